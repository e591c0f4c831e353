"""The averager's records (DESIGN.md §10): one round, its inputs and gate, and a published base's manifest.

The averager writes an :class:`AveragerRound` per round (``<state>/rounds/round-NNNNNN.json`` and
``latest.json``); the leaderboard and the localnet summary read them back. Every published base
carries a :class:`Manifest` (``manifest.json``: parent, inputs, weights, gate), which the next
round reads to skip inputs the base already holds; a :class:`MergeReport` is what one merge made (the
round's inputs to the manifest, and ``merge.json`` beside a ``cortex merge`` output). All are :class:`~cortex.protocol.records.Record`
subclasses: a reader gets exactly these fields or a ``RecordError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from cortex.errors import CortexError
from cortex.protocol.records import Record

KEPT = "kept"  # RoundInput.decision: merged (when the round got that far)
DROPPED = "dropped"  # RoundInput.decision: left out, ``reason`` says why
Status = Literal["published", "rejected", "skipped"]  # AveragerRound.status
STATUSES = get_args(Status)


@dataclass(frozen=True)
class RoundInput(Record):
    """One committed adapter a round considered, and the averager's decision about it."""

    kind = "averager_input"
    schema = 1

    uid: int
    hotkey: str
    repo: str
    revision: str
    commit_block: int
    incentive: float
    score: float | None = None  # mean reward in the validators' tables
    weight: float = 0.0  # final merge weight (after the cap and the clip)
    decision: Literal["kept", "dropped"] = KEPT
    reason: str = "selected"  # a stable code: selected, no_incentive, duplicate, outlier, hash_mismatch …
    detail: str = ""
    norm: float | None = None  # ‖ΔW‖_F over all modules
    clip: float | None = None  # min(1, median / norm)

    @property
    def model_key(self) -> str:
        return f"{self.repo}@{self.revision}"


@dataclass(frozen=True)
class GateResult(Record):
    """The merge gate's verdict: the merged base against the current base and the best single adapter."""

    kind = "averager_gate"
    schema = 1

    merged_reward: float | None
    base_reward: float | None
    best_single_reward: float | None
    best_single: str | None  # repo@revision of the best input adapter
    margin: float
    passed: bool
    reason: str
    prompts: int = 0
    singles: dict[str, float | None] | None = None  # every input's mean reward on the gate's prompts
    # the greedy soup's steps after a blend failed (averager.gate.greedy_soup): {added, score, kept} each
    soup: list[dict[str, Any]] | None = None
    # Brier skill (1 - Brier / 0.25) of the merge and of the base on the gate's prompts: the merge may not be lower
    merged_brier_skill: float | None = None
    base_brier_skill: float | None = None
    singles_brier_skill: dict[str, float | None] | None = None  # every input's, on the same prompts
    # answers out of format (averager.gate.check_format): the merge's and the base's on the gate's prompts,
    # then on ``format_prompts`` prompts in all (the gate's and the format check's own); None: not counted
    merged_failures: int | None = None
    base_failures: int | None = None
    format_prompts: int = 0
    merged_format_failures: int | None = None
    base_format_failures: int | None = None


@dataclass(frozen=True)
class BenchmarkScore(Record):
    """A base revision on the fixed benchmark questions (``cortex.eval.benchmark``): the same set every round."""

    kind = "base_benchmark"
    schema = 1

    model: str  # repo@revision
    questions: int
    questions_sha256: str  # of the question file, so two scores compare only on the same set
    mean_reward: float | None = None
    parse_rate: float | None = None
    brier: float | None = None  # mean (p_up - went_up)^2 over the answers that parse
    reason: str | None = None  # why there is no score (generation failed)
    # 1 - Brier / 0.25 over every question, an unparsed answer counted as 0.5 (cortex.eval.ceiling)
    brier_skill: float | None = None
    p_up: list[float | None] | None = None  # each question's parsed p_up (None: no parsed answer), in order


@dataclass(frozen=True)
class AveragerRound(Record):
    """One averager round: what it considered, merged, measured and published (or why it did not)."""

    kind = "averager_round"
    schema = 1

    round: int
    block: int  # the head block when the round started
    competition: str
    status: Status = "skipped"  # published | rejected (by the gate) | skipped (nothing to merge)
    reason: str = ""
    inputs: list[RoundInput] = field(default_factory=list)
    method: Literal["exact", "rank-r"] = "exact"
    energy_kept: dict[str, float] | None = None  # rank-r: share of each module's update kept
    gate: GateResult | None = None
    parent: str | None = None  # repo@revision merged into
    published: str | None = None  # repo@revision of the new base
    pointer_block: int | None = None  # block of the base-pointer commitment
    benchmark_before: BenchmarkScore | None = None  # the base the round started from (--benchmark)
    benchmark_after: BenchmarkScore | None = None  # the base it left: the merge if published, else the same

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise CortexError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if (self.status == "published") != (self.published is not None):
            raise CortexError("a published round names its base (published), and only a published round does")


@dataclass(frozen=True)
class MergeInput(Record):
    """One adapter folder a merge folded in."""

    kind = "merge_input"
    schema = 1

    path: str
    weight: float
    use_dora: bool
    r: int
    modules: int
    content_hash: str  # cortex.protocol.hashing.content_hash of the adapter folder


@dataclass(frozen=True)
class MergeReport(Record):
    """What ``averager.stream`` made: method, inputs and the output's content hash (every file in it)."""

    kind = "merge_report"
    schema = 1

    method: Literal["exact", "rank-r"]
    base: str  # the base folder merged into
    inputs: list[MergeInput]
    modules_merged: int
    content_hash: str
    dtype: str | None = None  # exact: the output's floating dtype ("same": the base's)
    rank: int | None = None  # rank-r only
    energy: dict[str, float] | None = None  # rank-r only: module -> fraction of the delta's energy kept


@dataclass(frozen=True)
class ManifestInput(Record):
    """One adapter merged into a published base."""

    kind = "manifest_input"
    schema = 1

    model: str  # repo@revision
    uid: int
    hotkey: str
    weight: float
    incentive: float
    commit_block: int
    score: float | None = None
    clip: float | None = None


@dataclass(frozen=True)
class Manifest(Record):
    """What a published base is made of (``manifest.json`` beside its weights).

    It holds no timestamps or local paths, so publishing the same merge twice gives the same revision.
    """

    kind = "base_manifest"
    schema = 1

    competition: str
    round: int
    parent: str  # repo@revision of the base merged into
    method: Literal["exact", "rank-r"]
    averager: str  # the averager's hotkey
    model_hash: str  # cortex.model.pointer.model_hash of the folder (card included)
    inputs: list[ManifestInput]
    gate: GateResult
    modules_merged: int | None = None
    dtype: str | None = None
    rank: int | None = None  # rank-r only
    energy_kept: dict[str, float] | None = None  # rank-r only

    @property
    def models(self) -> set[str]:
        """The adapters (repo@revision) this base already holds."""
        return {i.model for i in self.inputs}
