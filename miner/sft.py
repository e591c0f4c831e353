"""Supervised fine-tuning of a DoRA/LoRA adapter with TRL's ``SFTTrainer``.

The loss covers the assistant's tokens only: ``assistant_only_loss`` masks everything outside the
chat template's ``{% generation %}`` span (the base's template marks the answer and its stop
token). AdamW with weight decay, a cosine (or any ``lr_scheduler_type``) schedule after a linear
warm-up, gradient accumulation, and early stopping on the validation loss: the trainer evaluates
every ``eval_steps``, keeps the best checkpoint (``load_best_model_at_end``) and stops after
``early_stopping_patience`` evaluations without improvement. The validation loss is measured once
before the first step too, so the curve shows where the base started.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cortex.errors import CortexError
from miner.backends import load_adapter_for_training, load_for_training
from miner.config import TrainConfig
from miner.training import StageResult, common_args, losses, resume_checkpoint, save_adapter

log = logging.getLogger(__name__)


def sft_config(cfg: TrainConfig, out: Path, report_to: str, has_eval: bool):
    from trl import SFTConfig

    args = common_args(cfg, out, "sft", report_to)
    evals = {"eval_strategy": "steps", "eval_steps": cfg.eval_steps, "load_best_model_at_end": True,
             "metric_for_best_model": "eval_loss", "greater_is_better": False} if has_eval else {"eval_strategy": "no"}
    return SFTConfig(
        **args, **evals, save_strategy="steps", learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        max_length=cfg.cutoff_len, assistant_only_loss=True, packing=False,
        dataset_num_proc=None, remove_unused_columns=True,
    )


def train_sft(cfg: TrainConfig, base: Path, train, eval_, out: Path, *, targets: list[str],
              adapter: Path | None = None, report_to: str = "none", resume: bool = False) -> StageResult:
    """Train an adapter on ``train`` (rows with ``messages``) and save it to ``out/adapter``;
    continues ``adapter`` when given."""
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    if len(train) == 0:
        raise CortexError("no training rows for SFT: use more data (data_start/data_end) or a lower min_teacher_reward")
    train, eval_ = train.select_columns(["messages"]), eval_.select_columns(["messages"]) if eval_ is not None else None
    if adapter is not None:
        (model, tokenizer), peft_config = load_adapter_for_training(cfg, base, adapter), None
    else:
        model, tokenizer, peft_config = load_for_training(cfg, base, targets)
    callbacks = []
    if cfg.early_stopping_patience and eval_ is not None:
        callbacks.append(EarlyStoppingCallback(cfg.early_stopping_patience, cfg.early_stopping_threshold))
    trainer = SFTTrainer(model=model, args=sft_config(cfg, out, report_to, eval_ is not None),
                         train_dataset=train, eval_dataset=eval_, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=callbacks)
    checkpoint = resume_checkpoint(Path(trainer.args.output_dir), resume)
    initial = []
    if eval_ is not None and checkpoint is None:  # step 0: the base's validation loss, the curve's first point
        initial = [{**trainer.evaluate(), "step": 0}]  # (train() starts a new log history: keep it here)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    save_adapter(trainer, out / "adapter")
    history = initial + list(trainer.state.log_history)
    summary = {**losses(history), "train_runtime_s": result.metrics.get("train_runtime"),
               "global_step": trainer.state.global_step, "best_checkpoint": trainer.state.best_model_checkpoint,
               "stopped_early": bool(callbacks) and trainer.state.global_step < trainer.state.max_steps,
               "train_rows": len(train), "eval_rows": len(eval_) if eval_ is not None else 0,
               "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
    log.info("sft: %d steps, validation loss %s -> best %s", trainer.state.global_step,
             summary.get("eval_loss_initial"), summary.get("eval_loss_best"))
    del trainer, model
    return StageResult("sft", history, summary)
