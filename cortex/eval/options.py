"""How an evaluation engine runs on this machine: one dataclass, and the flags that fill it.

:class:`EngineOptions` is declared once, here, with its defaults; :func:`add_args` declares its
flags (``--device``, ``--dtype``, ``--vllm.*``) with those defaults, and :func:`from_args` reads them
back. A light module (no torch, no transformers), so a command's ``--help`` stays fast; the engines
themselves live in ``cortex.eval.engines``.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from cortex.errors import CortexError

DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
KV_CACHES = ("dynamic", "static")
COMPILE_NAMES = ("auto", "off", "inductor", "eager", "aot_eager")  # auto: inductor (CUDA graphs) on CUDA, off elsewhere
CHOICES = {"dtype": DTYPE_NAMES, "kv_cache": KV_CACHES, "compile": COMPILE_NAMES}


@dataclass(frozen=True)
class EngineOptions:
    """How an engine runs on this machine; changes speed, never what a model answers."""

    device: str = "auto"  # transformers engines: auto, cpu, cuda (every visible GPU) or cuda:N
    dtype: str = "auto"  # auto: cortex.eval.base.default_dtype (float32 on a CPU, bfloat16 on a GPU)
    max_loras: int = 8  # adapters sharing one batched pass (multi-lora, vllm)
    tensor_parallel_size: int = 1  # vllm: GPUs the base is split over
    max_model_len: int | None = None  # vllm: prompt + answer tokens (None: the model's own limit)
    gpu_memory_utilization: float = 0.9  # vllm: the share of each GPU's memory it may take
    kv_cache: str = "dynamic"  # transformers engines: dynamic, or static (pre-allocated; the same tokens)
    compile: str = "auto"  # multi-lora with the static cache: the decode step compiled (auto: on CUDA only)

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise CortexError(f"{FLAGS[name][0]} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.compile not in ("auto", "off") and self.kv_cache != "static":
            raise CortexError(f"--engine.compile {self.compile} compiles the static cache's decode step: "
                              "add --engine.kv-cache static")
        if self.max_loras < 1 or self.tensor_parallel_size < 1:
            raise CortexError("--vllm.max-loras and --vllm.tensor-parallel-size must be at least 1")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise CortexError(f"--vllm.max-model-len must be positive, got {self.max_model_len}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise CortexError(f"--vllm.gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")


# each field's flag and help; the defaults are the dataclass's own
FLAGS = {
    "device": ("--device", str, "auto, cpu, cuda (every visible GPU) or cuda:N (transformers engine)"),
    "dtype": ("--dtype", str, "weights of the base: auto (float32 on a CPU, bfloat16 on a GPU), float32, "
                              "bfloat16 or float16"),
    "max_loras": ("--vllm.max-loras", int, "adapters sharing one batched pass (multi-lora, vllm)"),
    "tensor_parallel_size": ("--vllm.tensor-parallel-size", int, "vllm: GPUs the base is split over"),
    "max_model_len": ("--vllm.max-model-len", int, "vllm: prompt + answer tokens per sequence (default: the "
                                                   "model's own limit)"),
    "gpu_memory_utilization": ("--vllm.gpu-memory-utilization", float,
                               "vllm: share of each GPU's memory for weights and KV cache"),
    "kv_cache": ("--engine.kv-cache", str, "transformers engines: dynamic (grown per token) or static (allocated "
                                           "once, transformers' StaticCache); the answers are the same"),
    "compile": ("--engine.compile", str, "multi-lora with --engine.kv-cache static: compile the decode step; auto: "
                                         "inductor with CUDA graphs on CUDA, off elsewhere; off; or a backend"),
}


def add_args(parser: argparse.ArgumentParser) -> None:
    """The engine flags, each filling the :class:`EngineOptions` field of the same name."""
    for f in dataclasses.fields(EngineOptions):
        flag, kind, text = FLAGS[f.name]
        extra = {"choices": CHOICES[f.name]} if f.name in CHOICES else {}
        parser.add_argument(flag, dest=f"engine_{f.name}", type=kind, default=f.default, help=text, **extra)


def from_args(args: argparse.Namespace) -> EngineOptions:
    """The options the flags describe (validated: a bad value is a one-line error)."""
    return EngineOptions(**{f.name: getattr(args, f"engine_{f.name}") for f in dataclasses.fields(EngineOptions)})
