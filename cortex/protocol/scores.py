"""Score tables (DESIGN.md §9): what a validator decided in one round, and why, as typed records.

A validator writes one :class:`ScoreTable` per round (``<state>/scores/round-NNNNNN.json`` and
``latest.json``); the averager's selection and the leaderboard read it back with ``ScoreTable.read``
(a file that is not exactly this shape is a ``RecordError``, never a guess). Per competition it
embeds the pure scoring's result (:class:`CompetitionScores`: per model its :class:`ModelSkill`,
the advantage over the base with its confidence interval, the days counted, whether and why it
earned) and what the round saw around it: the base, the window, the questions, the models refused
before scoring and the commitments ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cortex.protocol.records import Record


@dataclass(frozen=True)
class ModelSkill(Record):
    """One model's score in one competition: its advantage over the base and why it earned or not."""

    kind = "model_skill"
    schema = 1

    key: str
    hotkey: str
    uid: int
    commit_block: int
    advantage: float  # mean of daily mean paired reward differences (model − base); 0 without days
    ci_low: float  # one-sided lower bound at the competition's confidence
    ci_high: float  # the symmetric upper bound
    days: int  # question days with at least one paired answer in the window
    questions: int  # paired answers in the window
    earned: bool
    reason: str  # earned | no_answers | too_few_days | not_above_min_improvement | copy_of_earlier | not_above_earlier
    weight: float  # share of the competition's emission (0 unless earned, or chosen by unearned: best)
    versus: str | None = None  # the earlier model a copy or a later model was compared with

    @property
    def repo(self) -> str:
        return self.key.rsplit("@", 1)[0]

    @property
    def revision(self) -> str:
        return self.key.rsplit("@", 1)[-1]


@dataclass(frozen=True)
class CompetitionScores(Record):
    """One competition's scoring at ``as_of``: per model skill, weights by hotkey, the unearned share."""

    kind = "competition_scores"
    schema = 1

    competition: str
    as_of: str  # the market day of the decision (ISO)
    window_start: str  # first question day (cutoff) of the window (ISO)
    base_key: str  # the base of the newest day counted (or the only base)
    models: list[ModelSkill] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)  # hotkey → share of this competition
    unearned: float = 0.0  # share no model earned
    unearned_rule: str = "burn"  # where it goes: "burn" (owner) or "best" (already in weights)
    ignored: dict[str, int] = field(default_factory=dict)  # entries left out, by reason


@dataclass(frozen=True)
class Refused(Record):
    """A commitment that got zero before scoring: its adapter or its salted hash failed a check."""

    kind = "refused_model"
    schema = 1

    hotkey: str
    uid: int
    key: str  # repo@revision as committed
    commit_block: int
    reason: str  # a stable code: hash_mismatch, revision_not_found, non_finite, rank_over_limit …
    detail: str = ""


@dataclass(frozen=True)
class Ignored(Record):
    """A commitment not scored in this round (malformed, another competition, too new), and why."""

    kind = "ignored_commitment"
    schema = 1

    hotkey: str
    uid: int | None
    block: int
    reason: str  # malformed_commitment | inactive_competition | not_eligible
    detail: str = ""


@dataclass(frozen=True)
class ModelMetrics(Record):
    """One model's answers in the window, whatever they earned: what the leaderboard shows beside the skill."""

    kind = "model_metrics"
    schema = 1

    answered: int  # entries in the window (resolved or not)
    resolved: int  # entries with a reward
    failed: int  # entries without a usable answer (time budget, generation failure)
    mean_reward: float | None = None  # over the resolved entries
    parse_rate: float | None = None  # resolved entries whose answer parsed
    accuracy: float | None = None  # reward parts, means over the parsed answers
    depth: float | None = None
    penalties: float | None = None
    new_tokens: int = 0  # generated for the window's entries


@dataclass(frozen=True)
class CompetitionTable(Record):
    """One competition in one round: the scoring, and what the round saw around it."""

    kind = "competition_table"
    schema = 1

    competition: str
    base: str  # repo@revision of the base current at the newest question day
    window: list[str]  # [first, last] question day (ISO cutoffs)
    days: int  # market days in the window
    questions: int  # questions asked over the window
    scores: CompetitionScores
    metrics: dict[str, ModelMetrics] = field(default_factory=dict)  # model key (and the base's) → metrics
    generated: dict[str, int] = field(default_factory=dict)  # model key → answers generated this round
    refused: list[Refused] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)


@dataclass(frozen=True)
class ScoreTable(Record):
    """One validator round: every competition's table and the weights set on chain."""

    kind = "score_table"
    schema = 1

    round: int
    sync_block: int
    round_blocks: int
    validator: str  # hotkey
    version_key: int
    competitions: dict[str, CompetitionTable] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)  # uid (as a string) → weight
    weights_set: bool = False
    done: bool = False  # the round had been decided before: only the weights were (re)set
