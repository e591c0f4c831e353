"""What the three stages (SFT, GRPO, KTO) share: trainer arguments, checkpoints, saving the adapter.

The adapter folder holds exactly what validators accept (``adapter_config.json``,
``adapter_model.safetensors``, ``README.md``): ``Trainer.save_model`` also writes the tokenizer and
``training_args.bin`` (a pickle), which are removed. Saving goes through ``save_model`` so that
FSDP and DeepSpeed ZeRO-3 gather the sharded adapter before it is written.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers.trainer_utils import get_last_checkpoint

from cortex.adapter import ADAPTER_FILES
from miner.backends import has_gpu, use_bf16
from miner.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """One stage's outcome: its log history (what Trainer logged) and summary numbers."""

    stage: str
    log_history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def common_args(cfg: TrainConfig, out: Path, stage: str, report_to: str) -> dict[str, Any]:
    """TrainingArguments shared by every stage (each adds its own learning rate and length)."""
    return {
        "output_dir": str(out / "checkpoints" / stage),
        "run_name": cfg.run_name or f"{out.name}-{stage}",
        "report_to": [] if report_to == "none" else [report_to],
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "logging_steps": cfg.logging_steps,
        "logging_first_step": True,
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_ratio,  # transformers 5: a value below 1 is a ratio of the steps
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "activation_checkpointing": cfg.gradient_checkpointing,  # transformers 5's name for it
        "bf16": use_bf16(cfg),
        "fp16": False,
        "per_device_eval_batch_size": cfg.per_device_eval_batch_size,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": has_gpu(),
        "use_cpu": not has_gpu(),
        "ddp_find_unused_parameters": False,
        "disable_tqdm": os.environ.get("CORTEX_PROGRESS", "1") != "1",
    }


def resume_checkpoint(checkpoints: Path, resume: bool) -> str | None:
    """The newest checkpoint to resume from, when asked and when there is one."""
    if not resume:
        return None
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last is None:
        log.warning("--resume: no checkpoint under %s yet; training from the start", checkpoints)
    else:
        log.info("resuming from %s", last)
    return last


def save_adapter(trainer: Any, dest: Path) -> Path:
    """Write the trained adapter to ``dest``, keeping only the files validators accept."""
    dest.mkdir(parents=True, exist_ok=True)
    if getattr(trainer, "is_fsdp_enabled", False):  # gather the sharded adapter into one ordinary file
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(dest))
    if trainer.accelerator.is_main_process:
        for path in dest.iterdir():
            if path.name not in ADAPTER_FILES:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        missing = {"adapter_config.json", "adapter_model.safetensors"} - {p.name for p in dest.iterdir()}
        if missing:
            raise RuntimeError(f"saving the adapter to {dest} wrote no {sorted(missing)}")
    trainer.accelerator.wait_for_everyone()
    return dest


def losses(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The training and validation loss curves and their first/last/best values."""
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    out: dict[str, Any] = {"train_loss_curve": train, "eval_loss_curve": evals}
    if train:
        out.update(train_loss_first=train[0][1], train_loss_last=train[-1][1])
    tokens = [h["num_tokens"] for h in history if "num_tokens" in h and "eval_loss" not in h]
    runtime = next((h["train_runtime"] for h in history if "train_runtime" in h), None)
    if tokens and runtime:
        out["tokens_per_second_with_evals"] = round(max(tokens) / runtime, 1)
    if evals:
        out.update(eval_loss_initial=evals[0][1], eval_loss_final=evals[-1][1],
                   eval_loss_best=min(v for _, v in evals))
    return out
