"""Competitions: what miners compete on, as frozen dataclasses scheduled by block (DESIGN.md §5).

Every value a validator needs to score a competition lives here, so two validators with the same
definition and the same chain set the same weights. Subnet owners define their own in a YAML or
JSON file (``load_competitions``); the loader is strict, because a typo that silently fell back
to a default would split validators.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, get_type_hints

from cortex.errors import CortexError
from cortex.protocol.commitment import COMPETITION_ID_RE, REVISION_RE, ModelCommitment, is_repo_id
from cortex.reward.config import RewardConfig
from cortex.typed import build, read_data
from cortex.typed import is_int as _is_int
from cortex.typed import is_number as _is_real

# Every projection of a Llama-style decoder block (Llama, Mistral, Qwen2), attention then MLP: the target
# modules the competitions allow. ``cortex.adapter.names`` maps each to the block that holds it.
LLAMA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

ADAPTER_TYPES = ("lora", "dora")


class CompetitionError(CortexError):
    """An invalid competition definition, or an unknown competition id."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise CompetitionError(message)


def _ints(obj: object, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(_is_int(value, minimum), f"{name} must be an integer >= {minimum}, got {value!r}")


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(_is_real(value) and value > 0, f"{name} must be a number > 0, got {value!r}")


def _as_tuple(obj: object, name: str, unique: bool = True) -> tuple:
    """Freeze a list passed from Python into a tuple (the dataclass stays hashable)."""
    value = getattr(obj, name)
    if isinstance(value, list):
        value = tuple(value)
        object.__setattr__(obj, name, value)
    _check(isinstance(value, tuple) and len(value) > 0, f"{name} must be a non-empty list")
    repeated = unique and len(set(value)) != len(value)
    _check(not repeated, f"{name} must not repeat entries, got {list(value)}")
    return value


@dataclass(frozen=True)
class BaseModelRef:
    """The base model adapters are trained on and scored against; its tokenizer is the only one.

    Pinned: ``repo`` at ``revision``. With ``follow_pointer`` the base is the newest commitment of
    kind ``base`` for this competition made by ``averager_hotkey`` (the subnet owner's hotkey when
    None), and ``repo@revision`` is the genesis base used until the first pointer appears.
    ``builtin`` marks a genesis base built in code (the offline tiny Llama): its revision is the
    content hash of what the build writes, so it may be left out.
    """

    repo: str
    revision: str | None = None
    follow_pointer: bool = False
    averager_hotkey: str | None = None
    builtin: bool = False

    def __post_init__(self) -> None:
        _check(is_repo_id(self.repo), f"repo must be a Hub 'namespace/name', got {self.repo!r}")
        _check(
            self.revision is None
            or (isinstance(self.revision, str) and bool(REVISION_RE.fullmatch(self.revision))),
            f"revision must be a 40-hex commit sha or a 64-hex content hash, got {self.revision!r}",
        )
        _check(
            self.revision is not None or self.builtin,
            "revision is required: pin the base to an exact commit sha (never a branch)",
        )
        _check(
            self.averager_hotkey is None or (self.follow_pointer and bool(self.averager_hotkey)),
            "averager_hotkey needs follow_pointer: true (and a non-empty ss58 address)",
        )


@dataclass(frozen=True)
class AdapterLimits:
    """What a submitted adapter may be; a validator checks these before loading any weight."""

    types: tuple[str, ...]
    max_rank: int
    target_modules: tuple[str, ...]
    max_bytes: int

    def __post_init__(self) -> None:
        kinds = _as_tuple(self, "types")
        bad = sorted(set(kinds) - set(ADAPTER_TYPES))
        _check(not bad, f"types must be among {list(ADAPTER_TYPES)}, got {bad}")
        for name in _as_tuple(self, "target_modules"):
            ok = isinstance(name, str) and name.isidentifier()
            _check(ok, f"target_modules: expected module names like 'q_proj', got {name!r}")
        _ints(self, 1, "max_rank", "max_bytes")


@dataclass(frozen=True)
class EvalConfig:
    """How a validator evaluates one round (DESIGN.md §9)."""

    assets: tuple[str, ...]
    horizons_days: tuple[int, ...]
    prompts_per_round: int  # the averager's gate sample (drawn by the block hash); validators answer every question
    eval_window_days: int  # the averager's gate draws samples whose cutoff falls in the last N days
    eligibility_delay_blocks: int = 0  # a commitment must be at least this old to be scored
    max_new_tokens: int = 512
    batch_size: int = 8  # rows per generation batch: fixes each batch's composition, so validators agree
    time_budget_s: float = 600.0  # per model and round; a slower model scores zero

    def __post_init__(self) -> None:
        for asset in _as_tuple(self, "assets"):
            ok = isinstance(asset, str) and asset.isascii() and asset.isalnum() and asset.isupper()
            _check(ok, f"assets: expected upper-case symbols like 'BTC', got {asset!r}")
        horizons = _as_tuple(self, "horizons_days")
        ok = all(_is_int(h, 1) for h in horizons)
        _check(ok, f"horizons_days must be integers >= 1, got {list(horizons)}")
        _ints(self, 1, "prompts_per_round", "eval_window_days", "max_new_tokens", "batch_size")
        _ints(self, 0, "eligibility_delay_blocks")
        _positive(self, "time_budget_s")
        _check(
            self.eval_window_days > max(horizons),
            f"eval_window_days ({self.eval_window_days}) must exceed the longest horizon "
            f"({max(horizons)} days), or no outcome in the window is known yet",
        )


UNEARNED_RULES = ("burn", "best")


@dataclass(frozen=True)
class SkillConfig:
    """How a competition turns its ledger into weights (DESIGN.md §9; ``validator.scoring``).

    A model's score is its paired reward advantage over the base, per question both answered,
    averaged per question day and then over the days of a rolling window; its confidence bound
    treats days as the unit (docs/validator.md, "Scoring"). Reward units throughout.
    """

    window_days: int = 30  # a resolved question counts for this many days after its outcome is known
    min_days: int = 14  # question days with paired answers a model needs before it can earn
    min_improvement: float = 0.0  # the lower confidence bound of the advantage must exceed this
    confidence: float = 0.95  # one-sided level of the lower bound
    weight_power: float = 1.0  # earners' weights ∝ (advantage − min_improvement) ** weight_power
    copy_margin: float = 0.002  # a later model must beat every earlier earner by this (lower bound)
    unearned: str = "burn"  # when no model earns: "burn" (to the owner's uid) or "best" (highest bound)
    questions_per_day: int = 64  # cap on a day's live questions (a deterministic subset beyond it)

    def __post_init__(self) -> None:
        _ints(self, 1, "window_days", "min_days", "questions_per_day")
        _check(self.min_days <= self.window_days,
               f"min_days ({self.min_days}) must not exceed window_days ({self.window_days})")
        for name in ("min_improvement", "copy_margin"):
            value = getattr(self, name)
            _check(_is_real(value) and value >= 0, f"{name} must be a number >= 0, got {value!r}")
        ok = _is_real(self.confidence) and 0.5 <= self.confidence < 1
        _check(ok, f"confidence must be in [0.5, 1), got {self.confidence!r}")
        _positive(self, "weight_power")
        _check(self.unearned in UNEARNED_RULES,
               f"unearned must be one of {list(UNEARNED_RULES)}, got {self.unearned!r}")


@dataclass(frozen=True)
class Competition:
    """One competition: base, adapter limits, evaluation, reward, scoring, share, schedule."""

    id: str
    base: BaseModelRef
    adapters: AdapterLimits
    eval: EvalConfig
    reward: RewardConfig = field(default_factory=RewardConfig)
    scoring: SkillConfig = field(default_factory=SkillConfig)
    reward_share: float = 1.0  # relative share of the subnet's weights while active
    start_block: int = 0
    end_block: int | None = None  # exclusive; None: runs until removed from the schedule
    description: str = ""

    def __post_init__(self) -> None:
        ok = isinstance(self.id, str) and COMPETITION_ID_RE.fullmatch(self.id) is not None
        _check(ok, f"id must be 1-32 of a-z, 0-9, '-' starting with a letter, got {self.id!r}")
        hints = get_type_hints(Competition)
        for name in ("base", "adapters", "eval", "reward", "scoring"):
            ok = isinstance(getattr(self, name), hints[name])
            _check(ok, f"{name} must be a {hints[name].__name__}")
        _positive(self, "reward_share")
        _ints(self, 0, "start_block")
        end = self.end_block
        ok = end is None or (_is_int(end) and end > self.start_block)
        _check(ok, f"end_block must be after start_block ({self.start_block}), got {end!r}")
        _check(isinstance(self.description, str), "description must be a string")

    @property
    def tokenizer(self) -> BaseModelRef:
        """Always the base's: tokenizer files shipped with an adapter are never loaded."""
        return self.base

    def is_active(self, block: int) -> bool:
        return self.start_block <= block and (self.end_block is None or block < self.end_block)

    def is_base_pointer(self, commitment: ModelCommitment, hotkey: str, owner_hotkey: str) -> bool:
        """Whether ``hotkey``'s commitment is our base pointer, if it follows one."""
        return (
            self.base.follow_pointer
            and commitment.kind == "base"
            and commitment.competition_id == self.id
            and hotkey == (self.base.averager_hotkey or owner_hotkey)
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the file format ``load_competitions`` reads."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON definition: validators can check they run the same one."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CompetitionSchedule:
    """The competitions a subnet runs: which are active at a block, and their weight shares."""

    competitions: tuple[Competition, ...]

    def __post_init__(self) -> None:
        items = _as_tuple(self, "competitions", unique=False)
        _check(all(isinstance(c, Competition) for c in items), "competitions must be Competitions")
        ids = [c.id for c in items]
        _check(len(set(ids)) == len(ids), f"competition ids must be unique, got {ids}")

    def get(self, competition_id: str) -> Competition:
        return get_competition(competition_id, self.competitions, builtins=False)

    def active(self, block: int) -> tuple[Competition, ...]:
        return tuple(c for c in self.competitions if c.is_active(block))

    def shares(self, block: int) -> dict[str, float]:
        """Reward shares of the competitions active at ``block``, summing to 1 (empty if none)."""
        active = self.active(block)
        total = sum(c.reward_share for c in active)
        return {c.id: c.reward_share / total for c in active}


# Breadth (DESIGN.md §9): the built-in competitions ask about many assets a day. MAJOR_ASSETS are the
# twelve with daily Binance USDT candles since 2021 at the latest (the shared kline CSVs hold them);
# BINANCE_ASSETS adds eight more that trade on Binance against USDT with years of history.
MAJOR_ASSETS = ("BTC", "ETH", "SOL", "NEAR", "BNB", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC")
BINANCE_ASSETS = MAJOR_ASSETS + ("TRX", "ATOM", "BCH", "UNI", "ETC", "XLM", "FIL", "AAVE")

CORTEX_TINY = Competition(
    id="cortex-tiny",
    description="Offline: a tiny Llama built in code, following the averager's base pointer.",
    base=BaseModelRef(repo="cortex/tiny-llama", builtin=True, follow_pointer=True),
    adapters=AdapterLimits(("dora", "lora"), 8, LLAMA_TARGETS, max_bytes=8 << 20),  # 8 MiB
    eval=EvalConfig(
        assets=MAJOR_ASSETS, horizons_days=(1, 7), prompts_per_round=32,
        eval_window_days=30, eligibility_delay_blocks=5, max_new_tokens=256, batch_size=8,
        time_budget_s=300.0,
    ),
    # a CPU demo: 8 of the 24 (asset, horizon) questions a day; pays after 3 days of evidence
    scoring=SkillConfig(window_days=10, min_days=3, questions_per_day=8, confidence=0.9),
)

CORTEX_70B = Competition(
    id="cortex-70b",
    description="Llama 3.3 70B Instruct at a pinned revision; DoRA/LoRA up to rank 64.",
    base=BaseModelRef(
        repo="meta-llama/Llama-3.3-70B-Instruct",
        revision="6f6073b423013f6a7d4d9f39144961bfbfbc386b",
    ),
    adapters=AdapterLimits(("dora", "lora"), 64, LLAMA_TARGETS, max_bytes=2 << 30),  # 2 GiB
    eval=EvalConfig(
        assets=BINANCE_ASSETS, horizons_days=(1, 3, 7), prompts_per_round=256,
        eval_window_days=30, eligibility_delay_blocks=300, max_new_tokens=1024, batch_size=32,
        time_budget_s=3600.0,
    ),
    # 20 assets x 3 horizons = 60 questions a day, all asked; bench/skill_power.py measured these
    scoring=SkillConfig(window_days=90, min_days=30, questions_per_day=64),
)

# One GPU per miner (24-80 GB: QLoRA on 24 GB, LoRA in bf16 on 40 GB and up) and one 80 GB GPU per
# validator. LoRA only, so validators can serve every adapter of a round from one vLLM engine
# (multi-LoRA batches, max_lora_rank 32); DoRA would need the transformers engine. The base is
# meta-llama/Llama-3.1-8B-Instruct at the commit its Hub snapshots carry (docs/miner.md, "cortex-8b").
CORTEX_8B = Competition(
    id="cortex-8b",
    description="Llama 3.1 8B Instruct at a pinned revision; LoRA up to rank 32; one GPU per miner and validator.",
    base=BaseModelRef(
        repo="meta-llama/Llama-3.1-8B-Instruct",
        revision="0e9e39f249a16976918f6564b8830bc894c89659",
    ),
    adapters=AdapterLimits(("lora",), 32, LLAMA_TARGETS, max_bytes=512 << 20),  # 512 MiB (rank 32, all: ~168 MB bf16)
    eval=EvalConfig(
        assets=MAJOR_ASSETS, horizons_days=(1, 3, 7), prompts_per_round=128,
        eval_window_days=30, eligibility_delay_blocks=300, max_new_tokens=768, batch_size=32,
        time_budget_s=1800.0,
    ),
    # 12 assets x 3 horizons = 36 questions a day, all asked
    scoring=SkillConfig(window_days=60, min_days=21, questions_per_day=36),
)

BUILTIN_COMPETITIONS: dict[str, Competition] = {c.id: c for c in (CORTEX_TINY, CORTEX_8B, CORTEX_70B)}


def get_competition(
    competition_id: str, extra: Iterable[Competition] = (), builtins: bool = True
) -> Competition:
    """The competition with this id among ``extra`` and (unless disabled) the built-in ones."""
    known = {**(BUILTIN_COMPETITIONS if builtins else {}), **{c.id: c for c in extra}}
    if competition_id not in known:
        names = ", ".join(sorted(known)) or "none"
        raise CompetitionError(f"unknown competition {competition_id!r}; known: {names}")
    return known[competition_id]


def find_competition(spec: str, competition_id: str | None = None) -> Competition:
    """A built-in competition by id, or one from a YAML/JSON definitions file (``competition_id`` picks)."""
    path = Path(spec).expanduser()
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        return get_competition(spec)
    schedule = load_competitions(path)
    if competition_id is None and len(schedule.competitions) != 1:
        raise CompetitionError(f"{path} defines several competitions: pick one with --competition.id")
    return schedule.get(competition_id) if competition_id else schedule.competitions[0]


def load_competitions(path: str | Path) -> CompetitionSchedule:
    """Read ``{"competitions": [...]}`` from a YAML or JSON file, rejecting anything unexpected."""
    path = Path(path)
    data = read_data(path, error=CompetitionError, what="competitions")
    try:
        if not isinstance(data, dict) or set(data) != {"competitions"}:
            raise CompetitionError("expected one top-level key 'competitions' holding a list")
        items = data["competitions"]
        _check(isinstance(items, list) and len(items) > 0, "competitions: expected a list")
        built = [build(Competition, item, _where(i, item), error=CompetitionError) for i, item in enumerate(items)]
        return CompetitionSchedule(tuple(built))
    except CompetitionError as exc:
        raise CompetitionError(f"{path}: {exc}") from None


def _where(i: int, item: object) -> str:
    """``competitions[i]``, with the competition's id when it has one."""
    cid = item.get("id") if isinstance(item, dict) else None
    return f"competitions[{i}] ({cid})" if isinstance(cid, str) else f"competitions[{i}]"
