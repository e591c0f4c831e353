"""The preference stage (an alternative to GRPO): TRL's ``KTOTrainer`` on labelled teacher traces.

KTO needs no pairs: each (prompt, completion) is labelled desirable or undesirable on its own. The
labels come from the reward each teacher trace earned against its known outcome
(``teacher_reward`` in the dataset): at or above ``kto_reward_threshold`` it is desirable, below it
undesirable. The dataset is built without the SFT quality filter when this stage runs, so the low
scorers are there to learn from. ``pref_beta`` keeps the policy near the adapter-free base;
``kto_chosen_weight`` / ``kto_rejected_weight`` balance unequal classes (by default the rejected
weight is the ratio of desirable to undesirable traces, as TRL advises).

Rows reach TRL as text: the prompt as generation renders it and the answer up to its end-of-turn
token (``miner.sft.completion_text``), so every chat template gives the same split as in SFT; as
conversations, TRL would render prompt+answer together, and Mistral's template then drops the
system prompt.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cortex.errors import CortexError
from miner.backends import load_stage_model
from miner.config import TrainConfig
from miner.sft import completion_text
from miner.training import StageResult, common_args, resume_checkpoint, save_adapter

log = logging.getLogger(__name__)


def kto_rows(train, threshold: float, tokenizer):
    """``prompt`` / ``completion`` / ``label`` text rows from dataset rows with ``messages`` and ``teacher_reward``."""
    lead = tokenizer("", add_special_tokens=True)["input_ids"]  # what a plain call adds itself (Llama's BOS)
    auto = tokenizer.decode(lead) if lead else ""

    def label(row: dict) -> dict:
        prompt, completion = completion_text(tokenizer, row["messages"][:-1], row["messages"][-1])
        if auto and prompt.startswith(auto):  # TRL tokenizes text rows with the specials on: not twice
            prompt = prompt[len(auto):]
        return {"prompt": prompt, "completion": completion, "label": bool(row["teacher_reward"] >= threshold)}

    rows = train.map(label, remove_columns=train.column_names)
    good = sum(rows["label"])
    if good == 0 or good == len(rows):
        raise CortexError(f"KTO needs desirable and undesirable traces; with kto_reward_threshold {threshold} "
                          f"{good} of {len(rows)} are desirable: move the threshold")
    return rows, good


def kto_config(cfg: TrainConfig, out: Path, report_to: str, desirable: int, undesirable: int):
    from trl import KTOConfig

    rejected = cfg.kto_rejected_weight or cfg.kto_chosen_weight * desirable / undesirable  # TRL's advice: ratio ~1

    return KTOConfig(
        **common_args(cfg, out, "kto", report_to), eval_strategy="no", save_strategy="steps",
        learning_rate=cfg.kto_learning_rate, max_steps=cfg.kto_max_steps,
        per_device_train_batch_size=max(2, cfg.per_device_train_batch_size),  # the KL estimate pairs rows in a batch
        beta=cfg.pref_beta, desirable_weight=cfg.kto_chosen_weight, undesirable_weight=rejected,
        max_length=cfg.cutoff_len, remove_unused_columns=False,
    )


def make_trainer(cfg: TrainConfig, base: Path, train, out: Path, *, targets: list[str],
                 adapter: Path | None = None, report_to: str = "none"):
    """``(KTOTrainer, desirable traces, all traces)`` for ``train``; continues ``adapter`` when given."""
    from trl import KTOTrainer

    model, tokenizer, peft_config = load_stage_model(cfg, base, targets, adapter)
    rows, good = kto_rows(train, cfg.kto_reward_threshold, tokenizer)
    return KTOTrainer(model=model, args=kto_config(cfg, out, report_to, good, len(rows) - good), train_dataset=rows,
                      processing_class=tokenizer, peft_config=peft_config), good, len(rows)


def train_kto(cfg: TrainConfig, base: Path, train, out: Path, *, targets: list[str],
              adapter: Path | None = None, report_to: str = "none", resume: bool = False) -> StageResult:
    """Run KTO on labelled teacher traces; continues ``adapter`` when given."""
    trainer, good, total = make_trainer(cfg, base, train, out, targets=targets, adapter=adapter, report_to=report_to)
    checkpoint = resume_checkpoint(Path(trainer.args.output_dir), resume)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    save_adapter(trainer, out / "adapter")
    history = list(trainer.state.log_history)
    logged = [h for h in history if "loss" in h]
    summary = {"global_step": trainer.state.global_step, "train_runtime_s": result.metrics.get("train_runtime"),
               "rows": total, "desirable": good, "undesirable": total - good,
               "loss_first": logged[0]["loss"] if logged else None, "loss_last": logged[-1]["loss"] if logged else None,
               "threshold": cfg.kto_reward_threshold}
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "kl"):
        values = [h[key] for h in history if key in h]
        if values:
            summary[key.replace("/", "_") + "_last"] = values[-1]
    log.info("kto: %d steps on %d traces (%d desirable), loss %s -> %s", trainer.state.global_step, total, good,
             summary["loss_first"], summary["loss_last"])
    return StageResult("kto", history, summary)
