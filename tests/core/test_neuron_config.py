"""cortex.neuron: one set of shared flags for the three neurons, the same spellings and defaults in each."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import pytest

from cortex import neuron
from cortex.errors import CortexError
from cortex.neuron import NeuronConfig
from cortex.wandb_log import WandbConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SHARED = ["--netuid", "7", "--wallet.name", "w", "--wallet.hotkey", "h", "--wallet.path", "/wallets",
          "--subtensor.network", "embedded", "--chain.path", "chain/c.db", "--source", "synthetic:3",
          "--wandb.project", "p", "--wandb.mode", "online", "--wandb.entity", "team", "--logging.debug"]
CLOCK = ["--clock", "simulated", "--clock.start-day", "2024-02-03", "--clock.blocks-per-day", "5"]


def parse(*argv: str, **kw) -> NeuronConfig:
    parser = argparse.ArgumentParser()
    neuron.add_args(parser)
    return neuron.from_args(parser.parse_args(list(argv)), **kw)


def test_the_flags_fill_the_dataclass():
    cfg = parse(*SHARED, *CLOCK)
    assert (cfg.netuid, cfg.wallet_name, cfg.wallet_hotkey, cfg.wallet_path) == (7, "w", "h", "/wallets")
    assert cfg.offline and cfg.chain_path == "chain/c.db" and cfg.source == "synthetic:3" and cfg.debug
    assert cfg.store == f"local:{(Path('chain') / 'store').resolve()}"
    assert (cfg.clock, cfg.start_day, cfg.blocks_per_day) == ("simulated", date(2024, 2, 3), 5)
    assert cfg.wandb == WandbConfig(enabled=True, project="p", mode="online", entity="team")


def test_defaults_depend_on_the_network():
    offline = parse("--netuid", "1", "--chain.path", "c.db")
    assert (offline.source, offline.clock, offline.wandb.enabled) == ("synthetic", "simulated", True)
    live = parse("--netuid", "1", "--subtensor.network", "finney", "--wandb.off")
    assert (live.store, live.source, live.clock, live.wandb.enabled) == ("hf", "binance", "calendar", False)
    assert parse("--netuid", "1", "--subtensor.network", "test", default_source=False).source is None
    assert parse("--netuid", "1", need_store=False).store == "hf"  # the miner's --offline needs no store


@pytest.mark.parametrize("argv, message", [
    (["--netuid", "1"], r"needs --chain.path \(or --store local:DIR\)"),
    (["--netuid", "1", "--chain.path", "c", "--clock.start-day", "soon"], "YYYY-MM-DD"),
    (["--netuid", "1", "--chain.path", "c", "--clock.blocks-per-day", "0"], "at least 1"),
])
def test_bad_values_are_one_line_errors(argv, message):
    with pytest.raises(CortexError, match=message):
        parse(*argv)


def role_args(role: str) -> list[str]:
    extra = {"validator": [], "averager": ["--competition", "cortex-tiny"], "miner": ["--offline"]}[role]
    return [*SHARED, *([] if role == "miner" else CLOCK), *extra]


@pytest.mark.parametrize("role", ["validator", "averager", "miner"])
def test_every_role_takes_the_same_shared_flags(role):
    """The neurons' own parsers take the shared spellings and produce the same shared values."""
    if role == "miner":
        from neurons.miner import build_parser, options

        opts = options(build_parser().parse_args(role_args(role)))
        assert (opts.netuid, opts.network, opts.chain_path, opts.source) == (7, "embedded", "chain/c.db", "synthetic:3")
        assert opts.wandb == WandbConfig(project="p", mode="online", entity="team") and opts.no_chain
        assert isinstance(opts, NeuronConfig) and opts.wallet_name == "w" and opts.store == "hf"  # never opened
        return
    module = __import__(f"{role}.config", fromlist=["add_args", "from_args"])
    parser = argparse.ArgumentParser()
    module.add_args(parser)
    cfg = module.from_args(parser.parse_args(role_args(role)))
    assert isinstance(cfg, NeuronConfig)
    shared = parse(*SHARED, *CLOCK)
    for name in NeuronConfig.__dataclass_fields__:
        assert getattr(cfg, name) == getattr(shared, name), name
    state = cfg.state if role == "averager" else cfg.state.parent
    assert state == Path(f"~/.cortex/{role}/7-w-h").expanduser()


def test_localnet_command_lines_parse_with_the_neurons_parsers(tmp_path):
    """The command lines cortex.localnet builds use only flags the neurons declare."""
    from cortex.localnet import neurons as N
    from cortex.localnet.config import Settings

    s = Settings(workdir=tmp_path)
    from averager.config import add_args as averager_args
    from neurons.miner import build_parser
    from validator.config import add_args as validator_args

    for command, add in ((N.validator_command(s, "validator0", 1), validator_args),
                         (N.averager_command(s, 1), averager_args)):
        parser = argparse.ArgumentParser()
        add(parser)
        parser.parse_args(command.argv[2:])
    from averager.config import from_args
    from cortex.localnet.config import write_competition

    write_competition(s)  # the file the averager's command line names
    parser = argparse.ArgumentParser()
    averager_args(parser)
    assert from_args(parser.parse_args(N.averager_command(s, 1).argv[2:])).threads == s.threads * s.jobs
    build_parser().parse_args(N.miner_command(s, "miner0", 1, tmp_path / "c.yaml").argv[2:])


def test_the_averager_format_rule_flags_are_read_and_checked():
    import argparse

    from averager.config import add_args, from_args
    from cortex.errors import CortexError

    parser = argparse.ArgumentParser()
    add_args(parser)
    base = role_args("averager")
    cfg = from_args(parser.parse_args(base))
    assert (cfg.format_prompts, cfg.max_format_loss) == (96, 0.02)
    cfg = from_args(parser.parse_args([*base, "--format-prompts", "0", "--max-format-loss", "0.05"]))
    assert (cfg.format_prompts, cfg.max_format_loss) == (0, 0.05)
    for bad in (["--format-prompts", "-1"], ["--max-format-loss", "1.5"]):
        with pytest.raises(CortexError, match="--format-prompts"):
            from_args(parser.parse_args([*base, *bad]))
