"""The miner: train a DoRA/LoRA/QLoRA adapter of the competition's base and publish it (docs/miner.md).

config (the training YAML) → run (one round: base, data, stages, held-out gate, checks, publishing)
→ sft / grpo / kto (the TRL trainers) over backends (peft, qlora, unsloth) and training (shared
trainer settings, checkpoints, saving) → heldout (cortex.eval, as validators score) →
publish (validator checks, private upload, on-chain commitment, verify, public) → metrics.
"""
