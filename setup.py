"""Cortex: a Bittensor subnet that fine-tunes a crypto-market reasoning model."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The one version, in cortex/__init__.py (the weights version key and the auto-updater read it too).
VERSION = re.search(r'^__version__ = "([^"]+)"$', (HERE / "cortex" / "__init__.py").read_text(), re.M).group(1)

# PyTorch is a requirement of transformers/peft/trl. `make install` installs the
# CPU build (torch==2.13.0) first on machines without an NVIDIA GPU, so that this
# range is already satisfied and pip does not pull the CUDA wheels.
INSTALL_REQUIRES = [
    "bittensor>=11.3,<11.4",
    "numpy>=1.26",
    "pandas>=2.0",
    "kyber-py>=1.2",  # ML-KEM-768 decapsulation for the embedded chain's MEV shield
    "pycryptodome>=3.20",  # XChaCha20-Poly1305 for the same
    "torch>=2.4",
    # 5.23: TrainingArguments' `activation_checkpointing` (miner/training.py); 5.0: `rope_parameters`
    # (cortex/model/tiny.py, random_base.py; 4.x ignores it and falls back to rope_theta 10000)
    "transformers>=5.23",
    "peft>=0.17",
    "trl>=0.23",
    "accelerate>=1.0",
    "datasets>=3.0",
    "tokenizers>=0.21",
    "safetensors>=0.4",
    "huggingface_hub>=0.34",
    "asyncio-throttle>=1.0.2",
    "tenacity>=8.2",  # the one retry policy (cortex/retry.py)
    "httpx>=0.27",
    "openai>=1.40",
    "wandb>=0.18",
    "pyyaml>=6.0",
    "python-dotenv>=1.0",  # .env with the tokens (cortex.envfile; template .env.example)
    "tqdm>=4.66",
    "rich>=13.0",
    "fastapi>=0.110",
    "uvicorn>=0.30",
    "prometheus-client>=0.20",  # cortex serve's /metrics (the reference Prometheus client)
    "gguf>=0.19",  # cortex export's GGUF files for llama.cpp (pure Python; llama-cpp-python is not required)
    # cortex export's GPTQ copies need llmcompressor and compressed-tensors, which `make install` adds with
    # --no-deps (llmcompressor pins transformers<=5.17): see GPTQ_LIBS in the Makefile.
    "jinja2>=3.1",  # the leaderboard's templates (autoescaped)
    "markupsafe>=2.1",  # Markup for the leaderboard's pre-escaped HTML (charts, deltas)
    "matplotlib>=3.8",
]

EXTRAS = {
    "test": [
        "pytest>=8.0",
        "pytest-timeout>=2.3",
        "pytest-randomly>=3.15",  # shuffles test order every run (seed printed; --randomly-seed=N replays it)
        "hypothesis>=6.100",
        "playwright>=1.45",  # drives the system Chromium (apt: chromium) in the leaderboard's browser test
    ],
    "data": [],  # every data source uses the core requirements (httpx, openai)
    "gpu": ["bitsandbytes>=0.45", "vllm>=0.8"],
    "unsloth": ["unsloth"],
    "deepspeed": ["deepspeed>=0.15"],  # configs/accelerate/zero3.yaml (ZeRO-3 across GPUs)
    "dev": ["ruff>=0.6", "mypy>=1.10"],
}

setup(
    name="cortex-subnet",
    version=VERSION,
    description=__doc__,
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["cortex*", "miner*", "validator*", "averager*", "neurons*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": ["cortex=cortex.cli:main"],
        # role packages add `cortex` sub-commands here, so the core never imports them
        "cortex.commands": ["merge = averager.cli:register"],
    },
    include_package_data=True,
    package_data={"cortex.leaderboard": ["templates/*.html"]},
)
