"""The miner's run metrics (``OUTPUT/metrics.json``): what one mining round trained, measured and published.

``miner.run`` fills these fields as the round goes (training, the held-out gate, the pre-publish
checks, publishing) and writes them once at the end through :class:`RunMetrics`; ``--push-only``
reads them back to publish what a run trained, and the localnet summary reads each miner's. The
held-out numbers are per model scored on the held-out split: ``base``, ``adapter`` and, online,
``previous`` (the miner's last published adapter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cortex.protocol.records import Record

HELDOUT_MODELS = ("base", "adapter", "previous")


@dataclass(frozen=True)
class RunMetrics(Record):
    """One mining round's numbers; every field but the competition is absent until its step ran."""

    kind = "miner_run"
    schema = 1

    competition: str
    base: str | None = None  # repo@revision trained on
    base_path: str | None = None  # the local folder of that base
    adapter: str | None = None  # the adapter folder published (or that would be)
    config: dict[str, Any] = field(default_factory=dict)  # the training configuration (miner.config keys)
    processes: int = 1  # training processes (accelerate)
    source: str | None = None  # the market data the dataset came from
    data: dict[str, Any] | None = None  # the dataset's summary (rows per split, days, assets)
    seconds: float | None = None  # wall time of the round
    # training: each stage's summary (global_step, losses or rewards, curves …), and SFT's losses
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_loss_initial: float | None = None
    eval_loss_best: float | None = None
    eval_loss_final: float | None = None
    train_loss_first: float | None = None
    train_loss_last: float | None = None
    # the held-out gate (miner.heldout): per model (base, adapter, previous)
    heldout_prompts: int | None = None
    heldout_max_new_tokens: int | None = None
    heldout_reward_base: float | None = None
    heldout_reward_adapter: float | None = None
    heldout_reward_previous: float | None = None
    heldout_parse_rate_base: float | None = None
    heldout_parse_rate_adapter: float | None = None
    heldout_parse_rate_previous: float | None = None
    heldout_brier_skill_base: float | None = None  # 1 - Brier / 0.25 over every prompt (cortex.eval.ceiling)
    heldout_brier_skill_adapter: float | None = None
    heldout_brier_skill_previous: float | None = None
    heldout_failure_base: str | None = None
    heldout_failure_adapter: str | None = None
    heldout_failure_previous: str | None = None
    heldout_seconds_base: float | None = None
    heldout_seconds_adapter: float | None = None
    heldout_seconds_previous: float | None = None
    heldout_example_base: str | None = None
    heldout_example_adapter: str | None = None
    heldout_example_previous: str | None = None
    heldout_gate_passed: bool | None = None  # offline: what the gate would have decided
    # the validators' checks on the upload folder (cortex.adapter)
    adapter_check: str | None = None  # ok, or why the adapter would be refused
    adapter_type: str | None = None  # lora | dora
    adapter_rank: int | None = None
    adapter_bytes: int | None = None
    adapter_params: int | None = None
    upload_content_hash: str | None = None
    # publishing
    publish_decision: bool | None = None
    publish_reason: str | None = None
    published: str | None = None  # repo@revision
    published_block: int | None = None
    commitment: str | None = None  # the commitment string set on chain
    already_published: bool | None = None
