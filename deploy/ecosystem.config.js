// pm2 ecosystem for a Cortex node: the three neurons and the auto-updater (docs/operations.md).
//
//   set -a && . ./.env && set +a          # settings and tokens (copy .env.example to .env first)
//   pm2 start deploy/ecosystem.config.js --only cortex-validator,cortex-updater
//
// Settings are read from the environment when pm2 starts the apps; pm2 keeps them for restarts
// (after changing them: `pm2 restart deploy/ecosystem.config.js --only … --update-env`).
//   CORTEX_NETUID       the subnet's netuid (required)
//   CORTEX_NETWORK      --subtensor.network: finney (default), test, local or ws://…
//   CORTEX_WALLET       --wallet.name (default "default");  CORTEX_HOTKEY  --wallet.hotkey (default "default")
//   CORTEX_COMPETITION  the miner's and the averager's competition (default cortex-70b)
//   CORTEX_VALIDATOR_ARGS, CORTEX_MINER_ARGS, CORTEX_AVERAGER_ARGS  further flags, space-separated
//   CORTEX_UPDATE_INTERVAL  seconds between the updater's checks (default 900)
//   CORTEX_UPDATE_EXTRAS    extras the updater reinstalls with, e.g. gpu,deepspeed (default none)
//   CORTEX_PYTHON       the interpreter (default: the checkout's .venv/bin/python)
// Tokens (HF_TOKEN, WANDB_API_KEY, …) are read from .env by the neurons themselves at start.

const path = require("path");

const root = path.resolve(__dirname, "..");
const env = process.env;
const python = env.CORTEX_PYTHON || path.join(root, ".venv", "bin", "python");
const words = (s) => (s || "").split(/\s+/).filter(Boolean);

// Without CORTEX_NETUID the neuron stops at once with "--netuid is required" in `pm2 logs`.
const neuronArgs = (extra) => [
  ...(env.CORTEX_NETUID ? ["--netuid", env.CORTEX_NETUID] : []),
  "--subtensor.network", env.CORTEX_NETWORK || "finney",
  "--wallet.name", env.CORTEX_WALLET || "default",
  "--wallet.hotkey", env.CORTEX_HOTKEY || "default",
  ...extra,
];

const app = (name, script, args, more = {}) => ({
  name,
  script: path.join(root, script),
  interpreter: python,
  cwd: root, // .env is found here
  args,
  autorestart: true,
  max_restarts: 50,
  restart_delay: 30000, // ms: a crash loop does not hammer the chain or the Hub
  kill_timeout: 60000, // ms: time to finish writing state (state files are written atomically)
  time: true, // timestamps in `pm2 logs`
  ...more,
});

const competition = env.CORTEX_COMPETITION || "cortex-70b";

module.exports = {
  apps: [
    app("cortex-validator", "neurons/validator.py", neuronArgs(words(env.CORTEX_VALIDATOR_ARGS))),
    app("cortex-miner", "neurons/miner.py",
        neuronArgs(["--competition", competition, "--loop", ...words(env.CORTEX_MINER_ARGS)])),
    app("cortex-averager", "neurons/averager.py",
        neuronArgs(["--competition", competition, ...words(env.CORTEX_AVERAGER_ARGS)])),
    app("cortex-updater", "deploy/autoupdate.py",
        ["--interval", env.CORTEX_UPDATE_INTERVAL || "900",
         ...(env.CORTEX_UPDATE_EXTRAS ? ["--extras", env.CORTEX_UPDATE_EXTRAS] : [])],
        { restart_delay: 60000 }),
  ],
};
