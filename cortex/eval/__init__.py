"""The one evaluation module: how the miner's held-out check, the validator and the averager's gate
judge a model, so that all three see the same thing.

- ``cortex.eval.evalset``: the market clock, the round's sync block and window, and ``round_rows``,
  the prompts every model answers (drawn from the sync block's hash).
- ``cortex.eval.base``: the one base loader and its device/dtype policy.
- ``cortex.eval.prompts``: the one prompt builder (chat → token ids) every engine feeds.
- ``cortex.eval.generate``: ``Generator`` (adapters folded in one at a time, or LoRA adapters in
  mixed batches), ``evaluate`` and ``ModelScore``.
- ``cortex.eval.grouped_lora``: many LoRA adapters in one batch, two batched matmuls per layer.
- ``cortex.eval.engines``: the engines a validator runs (transformers, multi-LoRA, vLLM) and the
  rule that picks one per competition.
"""
