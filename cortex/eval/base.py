"""The one way a base is loaded for generation, with the one device and dtype policy.

Every evaluator (the validator's engines, the miner's held-out check, the averager's gate) loads its
base here, from a local folder or a store's ``repo@revision`` (fetched by ``cortex.model.loading``,
which allows only safetensors and standard files):

- ``device="auto"`` is CUDA when a GPU is visible, else the CPU; ``--device`` overrides it.
- On the CPU: float32. On CUDA: bfloat16 (float16 where the GPU lacks bf16), the weights spread over
  every visible GPU by ``accelerate`` (``device_map="auto"``) or pinned to ``cuda:N``. One copy of the
  base: adapters are injected into it, never into a second copy. ``dtype`` overrides the default.
- ``trust_remote_code`` is always False, only local files are read, and transformers' Hub kernels are
  off (:mod:`cortex.hub_kernels`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from cortex import hub_kernels
from cortex.hub.store import ModelStore
from cortex.model.loading import DEFAULT_MAX_BYTES, BaseModelError, check_model_dir, fetch_base
from cortex.protocol.commitment import is_repo_id
from cortex.protocol.competition import BaseModelRef

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> str:
    """``auto``: ``cuda`` when a GPU is visible, else ``cpu``; anything else as given."""
    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_dtype(device: str | torch.device) -> torch.dtype:
    """float32 on a CPU; bfloat16 on an accelerator that supports it, float16 otherwise."""
    kind = torch.device(resolve_device(device)).type
    if kind == "cpu":
        return torch.float32
    if kind == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """``auto``/None (the device's default), ``float32``, ``bfloat16`` or ``float16``."""
    if name is None or isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return None
    if name not in DTYPES:
        raise BaseModelError(f"dtype must be auto or one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def device_map(device: str) -> str | dict[str, int | str] | None:
    """What ``from_pretrained`` is given: every visible GPU for ``cuda``, one GPU for ``cuda:N``."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return None
    if dev.type == "cuda" and dev.index is None:
        return "auto"  # accelerate splits the layers over the visible GPUs
    return {"": device}


def base_folder(ref: BaseModelRef | str | Path, store: ModelStore | None = None, *, revision: str | None = None,
                cache_dir: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """The checked local folder of ``ref`` (a folder, a ``BaseModelRef`` or a repo id with ``revision``)."""
    if isinstance(ref, BaseModelRef):
        path = fetch_base(ref.repo, revision or ref.revision, store, cache_dir=cache_dir, max_bytes=max_bytes)
    elif isinstance(ref, (str, Path)) and Path(ref).is_dir():
        path = Path(ref)
    elif isinstance(ref, str) and is_repo_id(ref):
        path = fetch_base(ref, revision, store, cache_dir=cache_dir, max_bytes=max_bytes)
    else:
        raise BaseModelError(f"{ref!r} is neither a model folder nor a 'namespace/name' repo id")
    check_model_dir(path)
    return path


def load_base(ref: BaseModelRef | str | Path, store: ModelStore | None = None, *,
              revision: str | None = None, cache_dir: Path | None = None,
              max_bytes: int = DEFAULT_MAX_BYTES, device: str | torch.device = "auto",
              dtype: torch.dtype | str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``(model, tokenizer)`` of a base in eval mode, placed by the policy above.

    ``ref`` is a competition's :class:`BaseModelRef` (its pinned revision, or ``revision`` when
    given: a followed pointer is resolved by the caller), a ``namespace/name`` repo id with
    ``revision``, or a local model folder. ``store`` defaults to the Hugging Face Hub.
    """
    path = base_folder(ref, store, revision=revision, cache_dir=cache_dir, max_bytes=max_bytes)
    device = resolve_device(device)
    dtype = parse_dtype(dtype) or default_dtype(device)
    common = {"trust_remote_code": False, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(path, **common)
    placement = device_map(device)
    kwargs = {} if placement is None else {"device_map": placement}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, **kwargs, **common,
                                                 **hub_kernels.load_kwargs())
    return model.eval(), tokenizer
