"""The miner's configuration: its neuron flags (:class:`MinerConfig`) and its training YAML (:class:`TrainConfig`).

:class:`MinerConfig` extends ``cortex.neuron.NeuronConfig`` (netuid, wallet, chain, store, source,
wandb) with what one mining run needs: the competition, the output folder, ``--offline``,
``--push-only``, ``--loop`` and the rest of ``neurons/miner.py``'s flags.

The training configuration is one YAML file with the keys people know from LLaMA-Factory.

``load_config(path)`` reads it and checks every key against :class:`TrainConfig`: an unknown key
is named with the closest known one ("did you mean ..."), a bad value with what was expected, and
all problems are reported at once. Keys the miner deliberately does not take (the chat template,
other quantisation methods, ...) say why. ``configs/*.yaml`` are examples; docs/miner.md lists
every key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from cortex.adapter import LLAMA_TARGETS
from cortex.errors import CortexError
from cortex.neuron import NeuronConfig
from cortex.protocol.competition import Competition
from cortex.typed import build, read_data

STAGES = ("sft", "grpo", "kto", "calibrate")
FINETUNING_TYPES = ("dora", "lora", "qlora")
BACKENDS = ("peft", "unsloth")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay")
REPORT_TO = ("wandb", "none")
LORA_TARGETS = LLAMA_TARGETS  # every projection the checks allow (cortex.adapter.names)
# LLaMA-Factory keys that the miner does not take, and why.
NOT_SUPPORTED = {
    "template": "the base's own chat template is always used (validators prompt with it)",
    "quantization_method": "qlora always uses bitsandbytes 4-bit (finetuning_type: qlora)",
    "quantization_bit": "qlora always quantises to 4 bits (finetuning_type: qlora)",
    "additional_target": "adapters may not carry extra trainable modules (validators reject them)",
    "trust_remote_code": "bases are always loaded without remote code",
    "deepspeed": "choose DeepSpeed or FSDP in the accelerate config: accelerate launch --config_file configs/accelerate/zero3.yaml",
    "pref_loss": "the preference stage is KTO (stage: kto)",
}


class ConfigError(CortexError):
    """A training configuration that does not fit the schema."""


@dataclass(frozen=True, kw_only=True)
class MinerConfig(NeuronConfig):
    """The shared neuron fields (``cortex.neuron``) and the miner's own (``neurons/miner.py``'s flags)."""

    competition: Competition
    output_dir: Path = Path("runs/miner")  # adapter/, metrics.json and checkpoints
    no_chain: bool = False  # --offline: train and evaluate only, no chain and no store (NeuronConfig.offline
    # means the embedded chain)
    base: str | None = None  # a local base folder (overrides the competition's base)
    push_only: Path | None = None  # publish a finished run (or adapter folder); no training
    force: bool = False  # publish even when the held-out gate says no
    resume: bool = False  # continue from the newest checkpoint
    loop: bool = False  # a new round every loop_interval_s against fresh data and the newest base
    loop_interval_s: float = 3600.0
    loop_rounds: int | None = None  # None: never stop


@dataclass(frozen=True)
class TrainConfig:
    """Every key a training YAML may hold; defaults fit the tiny base on a CPU."""

    # stages and model
    stage: tuple[str, ...] = ("sft",)  # sft | grpo | kto | calibrate, or a list run in order: [sft, calibrate]
    finetuning_type: str = "dora"  # dora | lora | qlora (4-bit base, GPU only)
    backend: str = "peft"  # peft | unsloth (GPU only)
    model_name_or_path: str | None = None  # a local base folder instead of the competition's (offline)
    adapter_name_or_path: str | None = None  # an adapter folder the first stage continues training
    lora_rank: int = 8
    lora_alpha: float | None = None  # None: 2 x lora_rank
    lora_dropout: float = 0.0
    lora_target: tuple[str, ...] = ("all",)  # "all": every module the competition allows
    double_quantization: bool = True  # qlora: quantise the quantisation constants too
    # data
    source: str | None = None  # None: csv:$CORTEX_MARKET_DATA when set, else synthetic
    dataset: str | None = None  # a dataset folder from `cortex data build` (skips the build)
    assets: tuple[str, ...] = ("BTC", "ETH", "SOL", "NEAR")
    horizons: tuple[int, ...] = (1, 7)
    teacher: str = "analyst"  # analyst (offline) | analyst-words (offline, no numbers) | openrouter (DeepSeek R1)
    data_start: str | None = None  # first cutoff day (YYYY-MM-DD)
    data_end: str | None = None
    stride: int = 1  # every N-th day as a cutoff
    min_teacher_reward: float = 1.0  # SFT keeps teacher traces scoring at least this
    # SFT's loss on the answer and the reasoning's last N lines only (0: the whole completion). The forecast
    # lives there (the analyst's weighing and "Overall I lean ..." lines, then the answer's p_up): a base that
    # already writes the format learns within a few steps what to conclude instead of re-learning the steps.
    loss_tail_lines: int = 0
    cutoff_len: int = 1024  # tokens per training sequence
    max_samples: int | None = None  # cap on training rows (spread over the whole window)
    eval_split: str = "validation"  # the split for validation loss and early stopping
    val_size: float | None = None  # cap on validation rows: a count (>= 1) or a fraction (< 1)
    heldout_split: str = "test"  # the split scored before publishing
    heldout_samples: int = 32
    heldout_max_new_tokens: int | None = None  # None: the competition's max_new_tokens
    heldout_device: str = "auto"  # auto: bf16 across every visible GPU, else the CPU; or cpu, cuda, cuda:N
    # optimisation
    learning_rate: float = 2.0e-4
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    bf16: bool | None = None  # None: on a GPU that supports it
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    early_stopping_threshold: float = 0.0
    # checkpoints and logs
    logging_steps: int = 5
    eval_steps: int = 20
    save_steps: int = 20  # a multiple of eval_steps (the best checkpoint is kept)
    save_total_limit: int = 2
    plot_loss: bool = True
    report_to: str = "wandb"  # wandb (offline unless WANDB_MODE says otherwise) | none
    wandb_project: str = "cortex-miner"
    run_name: str | None = None
    seed: int = 42
    # GRPO
    num_generations: int = 4
    grpo_prompts_per_step: int = 2  # prompts per device per step (num_generations answers each)
    grpo_beta: float = 0.04
    grpo_learning_rate: float = 3.0e-6  # the seeds plan 1e-6 ... 5e-6
    grpo_max_steps: int = 20
    grpo_temperature: float = 1.0
    max_completion_length: int = 256
    grpo_use_vllm: bool = False  # generate with vLLM colocated on the training GPUs (pip install vllm)
    grpo_vllm_gpu_memory_utilization: float = 0.3  # the share of each GPU vLLM may take (colocated)
    # KTO
    pref_beta: float = 0.1
    kto_learning_rate: float = 5.0e-6
    kto_max_steps: int = 20
    kto_reward_threshold: float = 1.0  # teacher traces at or above: desirable; below: undesirable
    kto_chosen_weight: float = 1.0
    kto_rejected_weight: float | None = None  # None: desirable / undesirable count (balances the classes)
    # calibrate (miner/calibrate.py): the model's own answers, p_up sharpened to fit the training outcomes
    calibrate_samples: int = 256  # training questions answered to fit the sharpening (and trained on)
    calibrate_steps: int = 24
    calibrate_learning_rate: float | None = None  # None: learning_rate
    calibrate_answer_only: bool = True  # the loss on the answer alone (False: the whole answer, reasoning too)
    calibrate_max_sharpening: float = 3.0  # the fitted factor's upper bound (1 to 3): a smaller step per round
    calibrate_toward_teacher: float = 0.0  # then this share of the way to the teacher's p_up where it agrees on the side
    # publishing
    hub_model_id: str | None = None  # namespace/name in the model store (default: WALLET/COMPETITION)

    def __post_init__(self) -> None:
        problems = _check_values(self)
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def alpha(self) -> float:
        return float(self.lora_alpha) if self.lora_alpha is not None else 2.0 * self.lora_rank

    @property
    def use_dora(self) -> bool:
        return self.finetuning_type == "dora"

    def targets(self, allowed: tuple[str, ...] = LORA_TARGETS) -> list[str]:
        """The target modules: ``all`` means every module in ``allowed`` (the competition's)."""
        if self.lora_target == ("all",):
            return list(allowed)
        outside = [t for t in self.lora_target if t not in allowed]
        if outside:
            raise ConfigError(f"lora_target: {outside} not allowed by the competition (allowed: {list(allowed)})")
        return list(self.lora_target)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _check_values(c: TrainConfig) -> list[str]:
    bad: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            bad.append(message)

    need(bool(c.stage) and all(s in STAGES for s in c.stage),
         f"stage: expected sft, grpo, kto or calibrate (or a list), got {list(c.stage)}")
    need(len(set(c.stage)) == len(c.stage), f"stage: a stage appears twice in {list(c.stage)}")
    need("sft" not in c.stage or c.stage[0] == "sft", "stage: sft comes first (then grpo, kto or calibrate)")
    need("calibrate" not in c.stage or c.stage[-1] == "calibrate",
         "stage: calibrate comes last (it sharpens the forecasts of the adapter the stages before it trained)")
    need(c.finetuning_type in FINETUNING_TYPES, f"finetuning_type: expected one of {', '.join(FINETUNING_TYPES)}, got {c.finetuning_type!r}")
    need(c.backend in BACKENDS, f"backend: expected peft or unsloth, got {c.backend!r}")
    need(c.lr_scheduler_type in SCHEDULERS, f"lr_scheduler_type: expected one of {', '.join(SCHEDULERS)}, got {c.lr_scheduler_type!r}")
    need(c.report_to in REPORT_TO, f"report_to: expected wandb or none, got {c.report_to!r}")
    need(c.lora_target == ("all",) or all(t in LORA_TARGETS for t in c.lora_target),
         f"lora_target: expected 'all' or names among {', '.join(LORA_TARGETS)}, got {list(c.lora_target)}")
    for name in ("lora_rank", "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                 "cutoff_len", "heldout_samples", "logging_steps", "eval_steps", "save_steps", "save_total_limit",
                 "stride", "num_generations", "grpo_prompts_per_step", "grpo_max_steps", "max_completion_length",
                 "kto_max_steps", "calibrate_samples", "calibrate_steps"):
        need(getattr(c, name) >= 1, f"{name}: expected an integer >= 1, got {getattr(c, name)}")
    need(c.loss_tail_lines >= 0, f"loss_tail_lines: expected an integer >= 0 (0: the whole completion), got {c.loss_tail_lines}")
    need(1.0 <= c.calibrate_max_sharpening <= 3.0,
         f"calibrate_max_sharpening: expected a number from 1 to 3, got {c.calibrate_max_sharpening}")
    need(0.0 <= c.calibrate_toward_teacher <= 1.0,
         f"calibrate_toward_teacher: expected a share from 0 to 1, got {c.calibrate_toward_teacher}")
    need(c.calibrate_learning_rate is None or c.calibrate_learning_rate > 0,
         f"calibrate_learning_rate: expected a number > 0 or null, got {c.calibrate_learning_rate}")
    for name in ("max_samples", "heldout_max_new_tokens", "early_stopping_patience"):
        value = getattr(c, name)
        need(value is None or value >= 1, f"{name}: expected an integer >= 1 or null, got {value}")
    for name in ("learning_rate", "grpo_learning_rate", "kto_learning_rate", "max_grad_norm", "grpo_temperature",
                 "pref_beta", "kto_chosen_weight"):
        need(getattr(c, name) > 0, f"{name}: expected a number > 0, got {getattr(c, name)}")
    for name in ("weight_decay", "grpo_beta", "early_stopping_threshold"):
        need(getattr(c, name) >= 0, f"{name}: expected a number >= 0, got {getattr(c, name)}")
    need(c.heldout_device in ("auto", "cpu", "cuda") or c.heldout_device.startswith("cuda:") and c.heldout_device[5:].isdigit(),
         f"heldout_device: expected auto, cpu, cuda or cuda:N, got {c.heldout_device!r}")
    need(0 < c.grpo_vllm_gpu_memory_utilization < 1,
         f"grpo_vllm_gpu_memory_utilization: expected a fraction in (0, 1), got {c.grpo_vllm_gpu_memory_utilization}")
    need(c.kto_rejected_weight is None or c.kto_rejected_weight > 0,
         f"kto_rejected_weight: expected a number > 0 or null, got {c.kto_rejected_weight}")
    need(c.lora_alpha is None or c.lora_alpha > 0, f"lora_alpha: expected a number > 0 or null, got {c.lora_alpha}")
    need(0 <= c.lora_dropout < 1, f"lora_dropout: expected a number in [0, 1), got {c.lora_dropout}")
    need(0 <= c.warmup_ratio < 1, f"warmup_ratio: expected a number in [0, 1), got {c.warmup_ratio}")
    need(c.num_train_epochs > 0, f"num_train_epochs: expected a number > 0, got {c.num_train_epochs}")
    need(c.max_steps == -1 or c.max_steps >= 1, f"max_steps: expected -1 (use num_train_epochs) or >= 1, got {c.max_steps}")
    need(c.val_size is None or c.val_size > 0, f"val_size: expected a count >= 1, a fraction in (0, 1) or null, got {c.val_size}")
    need(c.save_steps % c.eval_steps == 0 if c.eval_steps >= 1 else True,
         f"save_steps ({c.save_steps}) must be a multiple of eval_steps ({c.eval_steps}) to keep the best checkpoint")
    need(c.num_generations >= 2, f"num_generations: GRPO compares at least 2 answers per prompt, got {c.num_generations}")
    need(len(c.assets) > 0 and len(c.horizons) > 0 and all(h >= 1 for h in c.horizons),
         "assets and horizons: expected non-empty lists (horizons in whole days >= 1)")
    need(c.hub_model_id is None or c.hub_model_id.count("/") == 1, f"hub_model_id: expected 'namespace/name', got {c.hub_model_id!r}")
    return bad


def _as_lists(data: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's spellings of list keys: ``lora_target: q_proj,v_proj`` and ``horizons: 7``."""
    hints = get_type_hints(TrainConfig)
    out = dict(data)
    for key, value in data.items():
        if key in hints and get_origin(hints[key]) is tuple and value is not None and not isinstance(value, list):
            out[key] = [v.strip() for v in value.split(",")] if isinstance(value, str) else [value]
    return out


def from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """A :class:`TrainConfig` from plain data, with every problem named in one error."""
    if isinstance(data, dict):
        data = _as_lists(data)
    try:
        return build(TrainConfig, data, error=ConfigError, refused=NOT_SUPPORTED, doc="docs/miner.md")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_config(path: str | Path | None) -> TrainConfig:
    """Read a training YAML; ``None`` gives the defaults."""
    if path is None:
        return TrainConfig()
    data = read_data(path, error=ConfigError, what="the training config",
                     hint="; pass --config configs/tiny-cpu.yaml or another file")
    return from_dict(data or {}, str(path))
