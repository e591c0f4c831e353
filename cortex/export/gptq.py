"""GPTQ copies of the base in the format vLLM loads: llmcompressor's ``GPTQModifier`` (the published GPTQ:
a Hessian from calibration activations per Linear, dampening, Cholesky inverse, column-by-column rounding with
error feedback), calibrated on the competition's own prompts, saved by compressed-tensors as ``pack-quantized``
weights with 16-bit activations (W4A16 / W8A16): config.json's ``quantization_config`` is what vLLM and
transformers' compressed-tensors quantizer read.

llmcompressor 0.14.0.1 is installed with ``--no-deps`` (Makefile: it pins transformers<=5.17, this project
needs >=5.23); its GPTQ path runs with transformers 5.25 on a CPU, and the tests load each copy back.

The scheme: symmetric integer weights; groups of ``GROUP`` input columns when every quantized Linear's width
is a multiple of it (llmcompressor's W4A16/W8A16 presets), else one scale per output row over the whole width
(strategy ``channel``: cortex-tiny's MLP is 688 wide). ``lm_head`` stays unquantized, as in the presets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from cortex import hub_kernels
from cortex.atomic import atomic_dir, refuse_existing
from cortex.errors import CortexError
from cortex.model.loading import check_model_dir

log = logging.getLogger(__name__)
BITS = (4, 8)
GROUP = 128  # input columns per scale where every quantized width divides by it
IGNORE = ("lm_head",)
DAMPENING = 0.01  # fraction of the Hessian's mean diagonal added to it before the Cholesky (GPTQ's λ)
INSTALL = "run make install (it adds llmcompressor and compressed-tensors with --no-deps: GPTQ_LIBS in the Makefile)"


def parse_bits(spec: str) -> tuple[int, ...]:
    """``"4,8"`` → ``(4, 8)``; ``""`` → ``()``; anything else is one clear error."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise CortexError(f"--gptq takes bit widths {', '.join(map(str, BITS))} comma-separated; got {spec!r}")
    bits = tuple(dict.fromkeys(int(p) for p in parts))
    check(bits)
    return bits


def check(bits: Sequence[int]) -> None:
    """Before any work: each width is one GPTQ takes, and llmcompressor is installed when any is asked for."""
    bad = [b for b in bits if b not in BITS]
    if bad:
        raise CortexError(f"GPTQ takes {' or '.join(map(str, BITS))} bits, not {', '.join(map(str, bad))}")
    if bits:
        try:
            import compressed_tensors  # noqa: F401
            import llmcompressor  # noqa: F401
        except ImportError as exc:
            raise CortexError(f"GPTQ needs llmcompressor ({exc}): {INSTALL}") from None


def scheme_name(bits: int) -> str:
    return f"w{bits}a16"


def _weights_args(model, bits: int):
    """Symmetric int ``bits`` weights in groups of ``GROUP``, or per output row where a width is not a multiple."""
    import torch
    from compressed_tensors.quantization import QuantizationArgs

    widths = {m.in_features for name, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and name.split(".")[-1] not in IGNORE}
    grouped = all(w % GROUP == 0 for w in widths)
    return QuantizationArgs(num_bits=bits, type="int", symmetric=True, strategy="group" if grouped else "channel",
                            group_size=GROUP if grouped else None)


def quantize(folder: Path, out: Path, bits: int, calibration: Sequence[Sequence[int]]) -> Path:
    """Write ``out``, a GPTQ ``bits``-bit copy of the model in ``folder`` calibrated on the prompt token ids
    ``calibration``, with its tokenizer; ``out`` must not exist (it appears whole or not at all)."""
    check([bits])
    check_model_dir(Path(folder))
    if not calibration:
        raise CortexError("GPTQ needs calibration prompts; none were given")
    refuse_existing(Path(out))
    from compressed_tensors.quantization import QuantizationScheme
    from llmcompressor import LoggerConfig, configure_logger, oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    configure_logger(LoggerConfig(console_log_level="ERROR"))  # not a line per module on stdout (its env vars win)
    common = {"trust_remote_code": False, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(folder, **common)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto", use_safetensors=True, **common,
                                                 **hub_kernels.load_kwargs())
    ids = [[int(t) for t in row] for row in calibration]
    data = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(r) for r in ids]})
    scheme = QuantizationScheme(targets=["Linear"], weights=_weights_args(model, bits))
    recipe = GPTQModifier(config_groups={"group_0": scheme}, ignore=list(IGNORE), dampening_frac=DAMPENING)
    log.info("GPTQ %d-bit: calibrating on %d prompts (%d tokens)", bits, len(ids), sum(map(len, ids)))
    oneshot(model=model, dataset=data, recipe=recipe, num_calibration_samples=len(ids),
            shuffle_calibration_samples=False, max_seq_length=max(map(len, ids)))
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, save_compressed=True)
        tokenizer.save_pretrained(tmp)
    return Path(out)
