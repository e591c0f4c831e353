"""The GRPO stage: TRL's ``GRPOTrainer`` with the Cortex reward, continuing the SFT adapter.

For each prompt the policy samples ``num_generations`` answers; ``cortex.reward`` scores each
against the prompt's realised outcome (the dataset keeps the outcome columns, which TRL passes to
the reward function as keyword arguments); the group-normalised rewards weight the policy
gradient, with a KL penalty ``grpo_beta`` towards the adapter-free base. The learning rate
defaults to 3e-6, inside the 1e-6 ... 5e-6 range the seeds plan. TRL logs the mean reward of each
step as ``reward``; the summary keeps its first, last and overall mean. On GPUs, ``grpo_use_vllm``
generates with vLLM colocated in the training processes (TRL's ``vllm_mode="colocate"``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cortex.errors import CortexError
from cortex.protocol.competition import Competition
from cortex.reward import make_grpo_reward
from miner.backends import load_stage_model
from miner.config import TrainConfig
from miner.training import StageResult, common_args, resume_checkpoint, save_adapter

log = logging.getLogger(__name__)
REWARD_COLUMNS = ("prompt", "asset", "horizon_days", "outcome_return", "outcome_direction", "realized_vol")


def under_zero3() -> bool:
    """Whether ``accelerate launch`` started this process with DeepSpeed ZeRO stage 3."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and \
        os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"


def generation_args(cfg: TrainConfig, zero3: bool) -> dict:
    """How GRPO generates: vLLM colocated on the training GPUs (``grpo_use_vllm``), else transformers'
    ``generate``. Under ZeRO-3 without vLLM the weights are not gathered onto each GPU to generate
    (TRL's default ``ds3_gather_for_generation``): a 70B base would not fit; generation is slower."""
    if cfg.grpo_use_vllm:
        return {"use_vllm": True, "vllm_mode": "colocate",
                "vllm_gpu_memory_utilization": cfg.grpo_vllm_gpu_memory_utilization}
    return {"use_vllm": False, "ds3_gather_for_generation": not zero3}


def grpo_config(cfg: TrainConfig, out: Path, report_to: str):
    from trl import GRPOConfig

    return GRPOConfig(
        **common_args(cfg, out, "grpo", report_to), eval_strategy="no", save_strategy="steps",
        learning_rate=cfg.grpo_learning_rate, max_steps=cfg.grpo_max_steps,
        per_device_train_batch_size=cfg.num_generations * cfg.grpo_prompts_per_step,
        num_generations=cfg.num_generations, beta=cfg.grpo_beta, temperature=cfg.grpo_temperature,
        max_completion_length=cfg.max_completion_length, log_completions=False,
        **generation_args(cfg, under_zero3()),
    )


def reward_summary(history: list[dict]) -> dict:
    """The logged mean rewards: per step, first, last and overall."""
    steps = [(h["step"], h["reward"]) for h in history if "reward" in h and "step" in h]
    if not steps:
        return {"reward_curve": []}
    rewards = [r for _, r in steps]
    return {"reward_curve": steps, "reward_first": rewards[0], "reward_last": rewards[-1],
            "reward_mean": sum(rewards) / len(rewards)}


def train_grpo(cfg: TrainConfig, base: Path, train, competition: Competition, out: Path, *,
               targets: list[str], adapter: Path | None = None, report_to: str = "none",
               resume: bool = False) -> StageResult:
    """Run GRPO on ``train`` (prompt + outcome columns); continues ``adapter`` when given."""
    from trl import GRPOTrainer

    if len(train) == 0:
        raise CortexError("no prompts for GRPO: use more data")
    missing = [c for c in REWARD_COLUMNS if c not in train.column_names]
    if missing:
        raise CortexError(f"the GRPO dataset lacks {missing}: use a dataset from `cortex data build`")
    train = train.select_columns(list(REWARD_COLUMNS))
    model, tokenizer, peft_config = load_stage_model(cfg, base, targets, adapter)
    tokenizer.padding_side = "left"
    trainer = GRPOTrainer(model=model, reward_funcs=[make_grpo_reward(competition.reward)],
                          args=grpo_config(cfg, out, report_to), train_dataset=train,
                          processing_class=tokenizer, peft_config=peft_config)
    checkpoint = resume_checkpoint(Path(trainer.args.output_dir), resume)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    save_adapter(trainer, out / "adapter")
    history = list(trainer.state.log_history)
    summary = {**reward_summary(history), "global_step": trainer.state.global_step,
               "train_runtime_s": result.metrics.get("train_runtime"), "prompts": len(train),
               "learning_rate": cfg.grpo_learning_rate, "num_generations": cfg.num_generations,
               "beta": cfg.grpo_beta}
    log.info("grpo: %d steps, mean reward %s (first %s, last %s)", trainer.state.global_step,
             summary.get("reward_mean"), summary.get("reward_first"), summary.get("reward_last"))
    return StageResult("grpo", history, summary)
