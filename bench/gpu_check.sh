#!/usr/bin/env bash
# The prepared GPU check (docs/benchmarks.md, "The GPU check"): one command on a machine with one
# NVIDIA GPU, torch, transformers, peft and accelerate, and no network. Sized for under 8 minutes on
# one H100. Here first, once: `.venv/bin/python bench/gpu_wheels.py` (the pinned wheels, ~27 MiB, in
# .whl/); there, carrying .whl:
#
#     bash bench/gpu_check.sh [--tiny] [FIGURES_DIR]      # default: $OUT when set, else /tmp/gpu_check
#
# It installs the wheels into /tmp/site, then runs the validator benchmark (grouped-LoRA engine vs a
# reload per adapter: ratio, fraction of the decode step's bandwidth bound, tokens expected vs
# produced; the engine again with the static KV cache and its decode step in CUDA graphs, its
# fraction of the bound and the rows whose text differs from the dynamic cache's; cross-batch
# agreement) and the miner benchmark (LoRA, QLoRA, held-out check), each under
# its own time limit so that one's failure still leaves the other's figures, and writes
# gpu_check.json (both reports, the card, the versions) beside their logs. Hub kernels stay off.
set -uo pipefail
cd "$(dirname "$0")/.."
TINY=()  # --tiny: the same steps on the CPU with tiny shapes (a dry run of this script)
if [ "${1:-}" = "--tiny" ]; then TINY=(--tiny); shift; fi
FIG="${1:-${OUT:-/tmp/gpu_check}}"
mkdir -p "$FIG"
if [ -d .whl ] && [ ${#TINY[@]} -eq 0 ]; then  # the wheels are for the GPU machine's Python 3.12
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: installing .whl failed" >&2; exit 2; }
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$FIG/gpu.txt" 2>&1 || true
python3 - > "$FIG/versions.txt" 2>&1 <<'EOF'
import importlib.metadata as m, sys
print("python", sys.version.split()[0])
for name in ("torch", "transformers", "peft", "accelerate", "trl", "bitsandbytes", "kernels"):
    try:
        print(name, m.version(name))
    except m.PackageNotFoundError:
        print(name, "-")
EOF
cat "$FIG/gpu.txt" "$FIG/versions.txt"
timeout 330 python3 bench/gpu_validator.py "${TINY[@]}" --reload-adapters 2 --agreement-adapters 2 --static-cache --json "$FIG/gpu_validator.json" 2>&1 \
  | tee "$FIG/gpu_validator.log"
echo "gpu_validator exit: ${PIPESTATUS[0]}"
timeout 150 python3 bench/gpu_miner.py "${TINY[@]}" --steps 12 --out /tmp/gpu_miner --json "$FIG/gpu_miner.json" 2>&1 \
  | tee "$FIG/gpu_miner.log"
echo "gpu_miner exit: ${PIPESTATUS[0]}"
python3 - "$FIG" <<'EOF'
import json, pathlib, sys
fig = pathlib.Path(sys.argv[1])
report = {"gpu": (fig / "gpu.txt").read_text().strip(), "versions": (fig / "versions.txt").read_text().splitlines()}
for name in ("gpu_validator", "gpu_miner"):
    path = fig / f"{name}.json"
    report[name] = json.loads(path.read_text()) if path.exists() else f"no figures: see {name}.log"
(fig / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
print(f"figures: {fig / 'gpu_check.json'}")
EOF
