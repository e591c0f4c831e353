"""Build the small wheel folder the prepared GPU check carries (docs/benchmarks.md, "The GPU check").

The lent GPU machine has torch, transformers, peft and accelerate but no package registry, and older
versions than the project pins. This downloads, for CPython 3.12 on x86-64, the versions this
checkout's environment has installed (``make install`` picks them) of what the GPU scripts import
beyond that machine's packages, plus bitsandbytes for QLoRA, and prunes bitsandbytes to its CUDA 13
libraries (the full wheel ships one library per CUDA release and is the bulk of the folder):

    .venv/bin/python bench/gpu_wheels.py            # writes .whl/ (git-ignored)

Then one call on the GPU machine, carrying ``.whl``: ``bash bench/gpu_check.sh`` (see that file).
Written here rather than with a library: it is pip's own ``download`` plus a zip rewrite.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import re
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what bench/gpu_validator.py and bench/gpu_miner.py import beyond torch/transformers/peft/accelerate,
# and the pinned transformers/peft themselves (the machine's are older)
PACKAGES = ["transformers", "peft", "trl", "tokenizers", "huggingface_hub", "safetensors", "datasets", "dill",
            "multiprocess", "python-dotenv", "asyncio-throttle", "truststore", "httpx2", "httpcore2", "tenacity"]
BITSANDBYTES = "0.50.2"  # the version the GPU run of issue 24 carried
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "any"]
KEEP_CUDA = re.compile(r"libbitsandbytes_(cpu|cuda13\d*)\.")


def pinned(names: list[str]) -> list[str]:
    """``name==version`` for each package installed here (the project's pins); missing ones are skipped."""
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            print(f"skip {name}: not installed here", file=sys.stderr)
    return out


def download(specs: list[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "-d", str(dest), "-q"]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + specs, check=True)


def prune_bitsandbytes(wheel: Path) -> int:
    """Drop every CUDA library but CUDA 13's (and the CPU one), rewriting RECORD; returns bytes saved."""
    before = wheel.stat().st_size
    buf = io.BytesIO()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        kept = []
        record_name = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        for info in src.infolist():
            name = info.filename
            if name == record_name:
                continue
            if name.endswith(".so") and "libbitsandbytes_" in name and not KEEP_CUDA.search(name):
                continue
            data = src.read(name)
            dst.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            kept.append((name, f"sha256={digest}", str(len(data))))
        record = io.StringIO()
        csv.writer(record, lineterminator="\n").writerows(kept + [(record_name, "", "")])
        dst.writestr(record_name, record.getvalue())
    wheel.write_bytes(buf.getvalue())
    return before - wheel.stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / ".whl"), help="the wheel folder (default: .whl in the checkout)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    download(pinned(PACKAGES) + [f"bitsandbytes=={BITSANDBYTES}"], out)
    for wheel in out.glob("bitsandbytes-*.whl"):
        print(f"pruned {wheel.name}: {prune_bitsandbytes(wheel) / 2**20:.0f} MiB of other CUDA releases removed")
    total = sum(w.stat().st_size for w in out.glob("*.whl"))
    print(f"{len(list(out.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {out}")
    if total > 60 * 2**20:
        raise SystemExit("over the 64 MiB a device call carries: remove what the GPU machine already has")


if __name__ == "__main__":
    main()
