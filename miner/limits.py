"""Every competition limit checked against the training config before any work (no data, no model).

The adapter a run will write is known from its config alone: :func:`check_planned` builds the
``adapter_config.json`` that ``peft`` will save (``miner.backends.lora_config``) and runs the
validators' own config policy on it (``cortex.adapter.policy.read_config``: adapter type, rank,
target modules, nothing else trainable), so a ``lora_rank: 64`` in a competition that allows 8 stops
here, in one line, instead of after minutes of training. QLoRA trains a LoRA adapter on a 4-bit
base, so it is held to the ``lora`` type. An adapter the first stage continues
(``adapter_name_or_path``) is checked the same way. :func:`check_size` adds the one limit that
needs the base's shapes (``max_bytes``), once the base is synced and still before any training.
After training, ``miner.publish.check_limits`` runs the full checks on the files themselves.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from cortex.adapter import AdapterRejected, BaseSpec
from cortex.adapter.files import CONFIG_FILE
from cortex.adapter.policy import read_config
from cortex.errors import CortexError
from cortex.protocol.competition import Competition
from miner.config import ConfigError, TrainConfig

# The training key to change for each refusal of the config policy.
KEY_OF = {"adapter_type": "finetuning_type", "rank_over_limit": "lora_rank", "target_not_allowed": "lora_target"}
FLOAT32_BYTES = 4  # peft keeps (and saves) adapter weights in float32, whatever the base's dtype
HEADROOM = 64 * 1024  # the config, the model card and the safetensors header


class LimitExceeded(ConfigError):
    """The training config would produce an adapter the competition refuses."""


def planned_config(cfg: TrainConfig, targets: list[str]) -> dict:
    """The ``adapter_config.json`` ``peft`` will save for this config, as ``save_pretrained`` writes it."""
    from miner.backends import lora_config

    data = lora_config(cfg, targets).to_dict()
    return {k: sorted(v) if isinstance(v, set) else v for k, v in data.items()}


def _check(config: dict, competition: Competition, what: str) -> None:
    limits = competition.adapters
    any_base = BaseSpec(1, {m: ("", 1, 1) for m in limits.target_modules})  # shapes are checked by check_size
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / CONFIG_FILE
        path.write_text(json.dumps(config, sort_keys=True))
        try:
            read_config(path, any_base, limits)
        except AdapterRejected as exc:
            key = KEY_OF.get(exc.reason)
            fix = f"; change {key} in the training config" if key and what == "the training config" else ""
            raise LimitExceeded(f"{what} would make an adapter competition {competition.id} refuses "
                                f"({exc.reason}: {exc.message}); its limits: {limits}{fix}") from None


def check_planned(cfg: TrainConfig, competition: Competition) -> list[str]:
    """The target modules to train, after checking the planned adapter (and any adapter it continues)
    against every limit of ``competition`` that the config decides; raises :class:`LimitExceeded`."""
    limits = competition.adapters
    kind = "lora" if cfg.finetuning_type == "qlora" else cfg.finetuning_type
    if kind not in limits.types:
        raise LimitExceeded(f"finetuning_type: {cfg.finetuning_type} makes a {kind} adapter and competition "
                            f"{competition.id} allows only {', '.join(limits.types)}")
    targets = cfg.targets(limits.target_modules)
    _check(planned_config(cfg, targets), competition, "the training config")
    if cfg.adapter_name_or_path:
        path = Path(cfg.adapter_name_or_path).expanduser() / CONFIG_FILE
        if not path.is_file():
            raise CortexError(f"adapter_name_or_path {path.parent}: no {CONFIG_FILE} there")
        _check(json.loads(path.read_text()), competition, f"adapter_name_or_path {path.parent}")
    return targets


def planned_bytes(cfg: TrainConfig, targets: list[str], spec: BaseSpec) -> int:
    """The adapter's size on disk: ``r x (in + out)`` float32 factors per trained module (DoRA: ``out``
    magnitudes more), in every layer, plus the small files."""
    per_layer = 0
    for name in targets:
        _, fan_in, fan_out = spec.modules[name]
        per_layer += cfg.lora_rank * (fan_in + fan_out) + (fan_out if cfg.use_dora else 0)
    return per_layer * spec.num_layers * FLOAT32_BYTES + HEADROOM


def check_size(cfg: TrainConfig, competition: Competition, base: Path) -> None:
    """``max_bytes`` against the base's shapes (read from its ``config.json``, no weights loaded)."""
    from transformers import AutoConfig

    spec = BaseSpec.from_config(AutoConfig.from_pretrained(base, trust_remote_code=False, local_files_only=True))
    targets = cfg.targets(competition.adapters.target_modules)  # checked by check_planned
    size, limit = planned_bytes(cfg, targets, spec), competition.adapters.max_bytes
    if size > limit:
        raise LimitExceeded(f"lora_rank {cfg.lora_rank} on {len(targets)} modules x {spec.num_layers} layers makes an "
                            f"adapter of about {size} bytes, over competition {competition.id}'s max_bytes {limit}: "
                            "lower lora_rank or name fewer modules in lora_target")
