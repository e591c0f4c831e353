"""Supervised fine-tuning of a DoRA/LoRA adapter with TRL's ``SFTTrainer``, on any chat model.

The loss covers the assistant's answer and its end-of-turn token only, for any Hugging Face chat
template: each row becomes a prompt and a completion, tokenized with the base's own tokenizer and
template, and TRL's completion-only loss (``completion_only_loss``) masks the prompt. Real bases
(Llama 3.1/3.3, Qwen2.5, Mistral) have no ``{% generation %}`` markers, which TRL's
``assistant_only_loss`` needs. The rows reach TRL already tokenized (``input_ids`` and
``completion_mask``) rather than as conversational prompt/completion rows, because TRL renders
prompt+completion as one conversation and takes the common prefix as the prompt: templates that
render the prompt differently inside a longer conversation (Mistral's attaches the system prompt to
the last user turn, which drops it once the answer follows) would then train on a context the model
never sees. Here the prompt is exactly what generation feeds the model (the template with
``add_generation_prompt``), and the completion is the answer as the template renders it, cut after
the tokenizer's end-of-turn (eos) token: what the model must write before it stops.

AdamW with weight decay, a cosine (or any ``lr_scheduler_type``) schedule after a linear warm-up,
gradient accumulation, and early stopping on the validation loss: the trainer evaluates every
``eval_steps``, keeps the best checkpoint (``load_best_model_at_end``) and stops after
``early_stopping_patience`` evaluations without improvement. The validation loss is measured once
before the first step too, so the curve shows where the base started.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cortex.errors import CortexError
from miner.backends import load_stage_model
from miner.config import TrainConfig
from miner.training import StageResult, common_args, losses, resume_checkpoint, save_adapter

log = logging.getLogger(__name__)


def sft_config(cfg: TrainConfig, out: Path, report_to: str, has_eval: bool, stage: str = "sft"):
    from trl import SFTConfig

    args = common_args(cfg, out, stage, report_to)
    evals = {"eval_strategy": "steps", "eval_steps": cfg.eval_steps, "load_best_model_at_end": True,
             "metric_for_best_model": "eval_loss", "greater_is_better": False} if has_eval else {"eval_strategy": "no"}
    return SFTConfig(
        **args, **evals, save_strategy="steps", learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        max_length=cfg.cutoff_len, completion_only_loss=True, packing=False,
        dataset_num_proc=None, remove_unused_columns=True,
    )


def completion_text(tokenizer, prompt: list[dict], answer: dict) -> tuple[str, str]:
    """``(prompt_text, completion_text)`` for one row: the prompt as generation renders it, the answer as
    the template renders it up to and including the end-of-turn token (SFT here, KTO in miner/kto.py)."""
    rendered_prompt = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template([*prompt, answer], tokenize=False)
    if full.startswith(rendered_prompt):
        text = full[len(rendered_prompt):]
    else:  # the template renders the prompt differently once the answer follows: take the answer's own span
        content = str(answer["content"]).strip()
        at = full.rfind(content) if content else -1
        if at < 0:
            raise CortexError("the base's chat template does not render the assistant's answer as given; "
                              "cannot tell which tokens to train on")
        text = full[at:]
    eos = tokenizer.eos_token
    if eos and eos in text:  # nothing after the stop token is ever generated
        text = text[:text.rindex(eos) + len(eos)]
    return rendered_prompt, text


def tail_start(text: str, lines: int) -> int:
    """Where the loss of a ``loss_tail_lines`` row starts in a completion's text: the start of the reasoning's
    last ``lines`` lines (the text before ``</think>``), or 0 when the reasoning has no more lines than that or
    no ``</think>``."""
    end = text.find("</think>")
    if lines <= 0 or end < 0:
        return 0
    at = end
    for _ in range(lines):
        at = text.rfind("\n", 0, at)
        if at < 0:
            return 0
    return at + 1


def answer_start(text: str) -> int:
    """Where an ``answer_only`` row's loss starts: at ``</think>`` (0 when the completion has none)."""
    return max(text.find("</think>"), 0)


def completion_weights(tokenizer, text: str, lines: int, answer_only: bool = False) -> tuple[list[int], list[int]]:
    """``(ids, mask)`` of a completion's text: mask 1 from :func:`tail_start` on (every token with ``lines`` 0), or
    with ``answer_only`` from :func:`answer_start` on. The ids are the text tokenized whole; a token counts as in
    the tail if it ends after the tail starts."""
    start = answer_start(text) if answer_only else tail_start(text, lines)
    if start == 0:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids, [1] * len(ids)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [int(end > start) for _, end in enc["offset_mapping"]]


def tokenize_rows(rows, tokenizer, tail_lines: int = 0, answer_only: bool = False):
    """Rows with ``messages`` (the prompt, then the assistant's answer) as ``input_ids`` + ``completion_mask``:
    the whole completion, with ``tail_lines`` only the reasoning's last lines and the answer, with
    ``answer_only`` the answer alone (from ``</think>``: the calibrate stage, whose reasoning is the model's own)."""
    def one(row: dict) -> dict:
        messages = row["messages"]
        if not messages or messages[-1]["role"] != "assistant":
            raise CortexError("an SFT row must end with the assistant's answer")
        prompt = list(tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                                    return_dict=True)["input_ids"])
        _, text = completion_text(tokenizer, messages[:-1], messages[-1])
        completion, mask = completion_weights(tokenizer, text, tail_lines, answer_only)
        return {"input_ids": prompt + completion, "completion_mask": [0] * len(prompt) + mask}

    return rows.map(one, remove_columns=rows.column_names)


def make_trainer(cfg: TrainConfig, base: Path, train, eval_, out: Path, *, targets: list[str],
                 adapter: Path | None = None, report_to: str = "none", stage: str = "sft", answer_only: bool = False):
    """The ``SFTTrainer`` for ``train`` / ``eval_`` (rows with ``messages``); continues ``adapter`` when given.
    ``stage`` names its checkpoint folder (``calibrate`` trains with this trainer too: miner/calibrate.py);
    ``answer_only`` puts the loss on the answer alone (:func:`tokenize_rows`)."""
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    if len(train) == 0:
        raise CortexError("no training rows for SFT: use more data (data_start/data_end) or a lower min_teacher_reward")
    model, tokenizer, peft_config = load_stage_model(cfg, base, targets, adapter)
    train = tokenize_rows(train.select_columns(["messages"]), tokenizer, cfg.loss_tail_lines, answer_only)
    eval_ = (tokenize_rows(eval_.select_columns(["messages"]), tokenizer, cfg.loss_tail_lines, answer_only)
             if eval_ is not None else None)
    callbacks = []
    if cfg.early_stopping_patience and eval_ is not None:
        callbacks.append(EarlyStoppingCallback(cfg.early_stopping_patience, cfg.early_stopping_threshold))
    return SFTTrainer(model=model, args=sft_config(cfg, out, report_to, eval_ is not None, stage),
                      train_dataset=train, eval_dataset=eval_, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=callbacks)


def train_sft(cfg: TrainConfig, base: Path, train, eval_, out: Path, *, targets: list[str],
              adapter: Path | None = None, report_to: str = "none", resume: bool = False,
              stage: str = "sft", answer_only: bool = False) -> StageResult:
    """Train an adapter on ``train`` (rows with ``messages``) and save it to ``out/adapter``;
    continues ``adapter`` when given."""
    from transformers import EarlyStoppingCallback

    trainer = make_trainer(cfg, base, train, eval_, out, targets=targets, adapter=adapter, report_to=report_to,
                           stage=stage, answer_only=answer_only)
    eval_ = trainer.eval_dataset
    stops = any(isinstance(c, EarlyStoppingCallback) for c in trainer.callback_handler.callbacks)
    checkpoint = resume_checkpoint(Path(trainer.args.output_dir), resume)
    initial = []
    if eval_ is not None and checkpoint is None:  # step 0: the base's validation loss, the curve's first point
        initial = [{**trainer.evaluate(), "step": 0}]  # (train() starts a new log history: keep it here)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    save_adapter(trainer, out / "adapter")
    history = initial + list(trainer.state.log_history)
    summary = {**losses(history), "train_runtime_s": result.metrics.get("train_runtime"),
               "global_step": trainer.state.global_step, "best_checkpoint": trainer.state.best_model_checkpoint,
               "stopped_early": stops and trainer.state.global_step < trainer.state.max_steps,
               "train_rows": len(trainer.train_dataset), "eval_rows": len(eval_) if eval_ is not None else 0,
               "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
    log.info("%s: %d steps, validation loss %s -> best %s", stage, trainer.state.global_step,
             summary.get("eval_loss_initial"), summary.get("eval_loss_best"))
    del trainer
    return StageResult(stage, history, summary)
