"""README's "Offline, piece by piece" block, run top to bottom in a fresh folder (issue 20): it must end
with a registered miner's adapter committed on the embedded chain and the validator's weights set there.

The block is taken from README.md as written and run with bash (``set -e``: any failing line fails the
test). The only changes are sizes, so that it fits a test: the bootstrap pre-trains for a few steps, and
the miner's training config (``configs/tiny-cpu.yaml`` in the temporary folder) trains a few steps on a
few rows. ``neurons/`` is the checkout's, linked in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SIZES = {  # a line of the block -> the same line with test-sized settings appended
    "cortex base bootstrap --out work/base --store local:work/store": " --steps 24 --eval-prompts 2 --threads 1 --no-progress",
}


def readme_block() -> str:
    """The section's first bash block (the second, forecasting with the adapter, is `cortex eval`'s:
    tests/eval/test_eval_predict.py)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Offline, piece by piece", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README's piece-by-piece section has no bash block"
    return match.group(1)


def sized(block: str) -> str:
    for line, extra in SIZES.items():
        assert line in block, f"README's block no longer has {line!r}: update SIZES"
        block = re.sub(rf"({re.escape(line)})([^\n]*)", lambda m: m.group(1) + extra + m.group(2), block, count=1)
    return block


def tiny_training_config(folder: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "tiny-cpu.yaml").read_text())
    config.update(assets=["BTC"], max_steps=3, max_samples=24, val_size=4, heldout_samples=2, eval_steps=3,
                  save_steps=3, logging_steps=1, plot_loss=False, report_to="none", early_stopping_patience=None,
                  data_start="2023-10-01", data_end="2023-12-20")
    (folder / "configs").mkdir()
    (folder / "configs" / "tiny-cpu.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_readme_offline_block(tmp_path):
    block = sized(readme_block())
    tiny_training_config(tmp_path)
    (tmp_path / "neurons").symlink_to(ROOT / "neurons")
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert not (tmp_path / "work").is_symlink() and (tmp_path / "work" / "chain.db").is_file()

    status = json.loads(subprocess.run(
        [str(Path(bindir) / "cortex"), "chain", "status", "--chain.path", "work/chain.db", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout)
    wallets = {name: json.loads((tmp_path / "work" / "wallets" / name / "hotkeys" / "default").read_text())["ss58Address"]
               for name in ("owner", "miner1", "validator1")}
    by_hotkey = {n["hotkey"]: n for n in status["neurons"]}
    assert set(wallets.values()) <= set(by_hotkey)  # all three registered
    miner, validator = by_hotkey[wallets["miner1"]], by_hotkey[wallets["validator1"]]
    assert miner["commitment"] and miner["commitment"].startswith("cx1"), miner  # the adapter's commitment
    assert by_hotkey[wallets["owner"]]["commitment"], "the owner's base pointer"
    assert validator["validator_permit"] and validator["stake"] >= 100
    assert validator["weights"], "the validator set no weights"
    assert abs(sum(validator["weights"].values()) - 1.0) < 0.01
