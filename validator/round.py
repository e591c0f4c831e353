"""One validator round, end to end (DESIGN.md §9), and the loop that runs one per tempo.

sync the metagraph and commitments → per active competition:

1. the window: the market days of ``scoring.window_days`` up to the newest closed day, and each
   day's questions (``validator.questions``);
2. the base (the averager's pointer, or the pinned base) at the sync block, and the base that was
   current on each question day, read from the chain's pointer history
   (``cortex.model.pointer.bases_at``): a validator started after a merge judges the days before it
   against the base of those days, as one that ran through them did;
3. the prompts of those questions, from market data up to each cutoff (an unresolved question has
   a prompt and no outcome yet);
4. the eligible commitments: fetch, verify the salted hash, check the adapter, and refuse one
   trained on another base than the current one (``stale_base``) (a refused one gets zero with its
   reason);
5. the answers still missing from the outcome ledger, generated in batches through one engine and
   stored after every model (a kill loses at most one model's batch; no answer is ever generated
   twice): each base answers the questions of the days it was current, each model the questions
   of the days it committed before, on that day's base;
6. rewards for the answers whose outcome has resolved; answers older than the window pruned;
7. the pure scoring (``validator.scoring.score_competition``) over the window's ledger entries;

→ competitions combined by reward share, unearned emission to the owner → ``bt.SetWeights`` → the
score table (``cortex.protocol.scores.ScoreTable``, JSON beside the state file, and wandb when
enabled).

The sync block is the round's first block (``cortex.eval.evalset.sync_block``). Questions depend
only on the competition and the market clock, answers on the (immutable) revisions, rewards on
market data, and each day's base on the chain's history, so validators that see the same chain and
data set the same weights, whenever each of them started or generated its answers.

Before the first round (``Validator.preflight``): the hotkey is registered and may set weights
(``cortex.chain.registration``), and every pinned base revision is in its repo's listing
(``cortex.model.pointer.check_pinned``); either failing is one line, before any evaluation.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import bittensor as bt
import numpy as np

from cortex.adapter import AdapterRejected, BaseSpec, check_adapter, check_base_revision
from cortex.adapter.fetch import AdapterCache, verify
from cortex.chain.registration import require_validator
from cortex.data import build_samples, get_source
from cortex.errors import CortexError
from cortex.eval.engines import Engine, Job, build_engine
from cortex.eval.evalset import HISTORY_LOOKBACK_DAYS, eligible_before, may_answer, sync_block
from cortex.hub.store import ModelStore
from cortex.model.pointer import BaseRef, bases_at, check_pinned
from cortex.protocol.competition import Competition, CompetitionSchedule
from cortex.protocol.ledger import LedgerEntry, Question
from cortex.protocol.scores import CompetitionTable, ModelMetrics, Refused, ScoreTable
from cortex.wandb_log import WandbLog
from validator import discovery, questions
from validator.chain_weights import set_weights, to_uids
from validator.config import WEIGHTS_VERSION, ValidatorConfig
from validator.ledger import Ledger, entry_for, scored
from validator.scoring import Contender, combine, score_competition
from validator.state import RoundProgress, ValidatorState, load, save

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """What a validator runs on; tests swap any of them."""

    config: ValidatorConfig
    sub: bt.Subtensor
    wallet: bt.Wallet
    store: ModelStore
    schedule: CompetitionSchedule
    make_engine: Callable[[Path, Competition], Engine] | None = None
    wait_blocks: Callable[[int], None] | None = None


@dataclass(frozen=True)
class Model:
    """One model that answers questions this round: the base (no adapter) or a checked adapter."""

    key: str  # repo@revision
    adapter: Path | None
    questions: tuple[Question, ...]  # the window's questions it answers (each on its day's base)


class Validator:
    def __init__(self, parts: Parts) -> None:
        self.parts, self.cfg, self.sub = parts, parts.config, parts.sub
        self.cache = AdapterCache(parts.store, self.cfg.cache_dir / "adapters")
        self.source = get_source(self.cfg.source)
        self.hotkey = parts.wallet.hotkey.ss58_address
        self.ledger = Ledger(self.cfg.ledger)
        self._engines: dict[str, tuple[str, Engine]] = {}  # competition → (base folder, engine)
        self._bases: dict[str, Any] = {}
        self.wandb = WandbLog(self.cfg.wandb, folder=self.cfg.state_dir, project="cortex-validator",
                              name=f"validator-{self.hotkey[:8]}",
                              config={"netuid": self.cfg.netuid, "hotkey": self.hotkey, "version_key": WEIGHTS_VERSION})

    # --- the loop -----------------------------------------------------------------------

    def preflight(self) -> None:
        """What would otherwise fail only after minutes of evaluation, checked first (one-line CortexError)."""
        require_validator(self.sub, self.cfg.netuid, self.hotkey, self.cfg.network)
        for comp in self.parts.schedule.competitions:
            check_pinned(comp, self.parts.store)

    def run(self) -> None:
        """Checks, then one round (``--once``), or one per round forever; a failed round is logged and retried."""
        self.preflight()
        while True:
            if self.cfg.once:
                self.run_round()
                return
            try:
                table = self.run_round()
                target = table.sync_block + table.round_blocks
            except Exception:
                log.exception("the round failed; retrying in a few blocks")
                target = self.sub.block + (self.cfg.round_blocks or 10)
            log.info("next round at block %d", target)
            self.sub.wait_for_block(target)

    def _wait_blocks(self, n: int) -> None:
        if self.parts.wait_blocks is not None:
            return self.parts.wait_blocks(n)
        self.sub.wait_for_block(self.sub.block + n)

    # --- one round ----------------------------------------------------------------------

    def run_round(self) -> ScoreTable:
        """Run (or resume, or finish) the current round; returns its score table (``done`` if it ran before)."""
        cfg = self.cfg
        snap = discovery.sync(self.sub, cfg.netuid)
        interval = cfg.round_blocks or snap.tempo or 1
        sync = sync_block(snap.block, interval)
        active = self.parts.schedule.active(sync)
        key = f"{sync}:{','.join(c.id for c in active)}"
        state = load(cfg.state)
        if state.progress.key != key:
            state.round += 1
            state.progress = RoundProgress(key)
            save(cfg.state, state)
        elif state.progress.weights is not None:
            decided = {int(u): w for u, w in state.progress.weights.items()}
            if state.last_weights_block < sync:  # decided but not yet on chain: only set them
                self._set(state, decided, snap)
            log.info("round %d (sync block %d) is already done", state.round, sync)
            return ScoreTable(state.round, sync, interval, self.hotkey, WEIGHTS_VERSION,
                              weights={str(u): w for u, w in sorted(decided.items())},
                              weights_set=state.last_weights_block >= sync, done=True)
        log.info("round %d: sync block %d, %d competitions active", state.round, sync, len(active))
        ids = {c.id for c in active}
        tables: dict[str, CompetitionTable] = {}
        for comp in active:
            try:
                tables[comp.id] = self._competition(comp, snap, sync, state, ids)
            except CortexError as exc:  # no base yet, no data: skip this competition this round
                log.error("%s: not scored this round: %s", comp.id, exc)
            save(cfg.state, state)
        weights = combine({c: t.scores for c, t in tables.items()}, self.parts.schedule.shares(sync),
                          burn_key=snap.owner_hotkey)
        uid_weights = to_uids(weights, snap.uids)
        state.progress.weights = {str(u): w for u, w in uid_weights.items()}
        save(cfg.state, state)
        weights_set = self._set(state, uid_weights, snap)
        table = ScoreTable(state.round, sync, interval, self.hotkey, WEIGHTS_VERSION, tables,
                           {str(u): w for u, w in sorted(uid_weights.items())}, weights_set)
        self._publish(table)
        return table

    def _set(self, state: ValidatorState, uid_weights: dict[int, float], snap: discovery.Snapshot) -> bool:
        if not uid_weights:
            log.warning("no weights to set")
            return False
        ok = set_weights(self.sub, self.parts.wallet, self.cfg.netuid, uid_weights, version_key=WEIGHTS_VERSION,
                         wait_blocks=self._wait_blocks, own_uid=snap.uids.get(self.hotkey))
        if ok:
            state.last_weights_block = int(self.sub.block)
            save(self.cfg.state, state)
        return ok

    # --- one competition ------------------------------------------------------------------

    def _competition(self, comp: Competition, snap: discovery.Snapshot, sync: int, state: ValidatorState,
                     active: set[str]) -> CompetitionTable:
        clock, delay = self._clock(sync), comp.eval.eligibility_delay_blocks  # 1. the window and its questions
        days = questions.scoring_window(clock, sync, comp).days
        first, today = days[0].isoformat(), days[-1].isoformat()
        base, bases = self._day_bases(comp, snap, sync, clock, days)  # 2. the base, and the base of each day
        base_key, base_dir = str(base), self._base(base)
        day_base = {day: str(ref) for day, ref in bases.items()}
        rows = self._rows(comp, days)  # 3. prompts up to each cutoff; outcomes of the days that resolved
        asked = [q for d in days for q in questions.day_questions(comp, d) if q.id in rows]
        if not asked:
            raise CortexError(f"no market data for the questions of {first}..{today}: check --source and the clock")

        newest = eligible_before(clock, days[-1], delay)  # 4. eligible commitments, fetched and checked
        cands, ignored = discovery.candidates(snap, comp, newest, active)
        for i in ignored:
            log.info("uid %s %s…: ignored (%s): %s", i.uid, i.hotkey[:8], i.reason, i.detail)
        contenders, refused, adapters = self._check(comp, cands, base, base_dir, state, clock)
        models = [Model(key, None, tuple(q for q in asked if day_base[q.cutoff] == key))
                  for key in sorted(set(day_base.values()))]
        for key, adapter in adapters.items():  # each answers the days its earliest verified commitment preceded
            block = min(c.commit_block for c in contenders if c.key == key)
            models.append(Model(key, adapter, tuple(q for q in asked
                                                    if may_answer(block, date.fromisoformat(q.cutoff), clock, delay))))

        self.ledger.prune(comp.id, first)  # 5. only the answers the ledger lacks; 6. rewards once resolved
        generated = self._answer(comp, bases, models, rows, sync)
        self._score_resolved(comp, rows, today)
        entries = self.ledger.entries(comp.id, first, today)  # 7. the pure scoring over the window
        scores = score_competition(entries, contenders, day_base, comp.scoring, as_of=today, competition=comp.id)
        for m in scores.models:
            log.info("%s uid %d %s: advantage %+.4f [%+.4f, %+.4f] over %d days (%d questions): %s → weight %.4f",
                     comp.id, m.uid, m.key[:60], m.advantage, m.ci_low, m.ci_high, m.days, m.questions, m.reason,
                     m.weight)
        if scores.unearned:
            log.info("%s: %.0f%% of the competition's emission unearned (%s)", comp.id, 100 * scores.unearned,
                     scores.unearned_rule)
        return CompetitionTable(comp.id, base_key, [first, today], len(days), len(asked), scores,
                                _metrics(entries), generated, refused, list(ignored))

    def _day_bases(self, comp: Competition, snap: discovery.Snapshot, sync: int, clock,
                   days: Sequence[date]) -> tuple[BaseRef, dict[str, BaseRef]]:
        """The base at the sync block, and question day → the base current when the day's answerers were fixed."""
        newest = discovery.resolve_base(snap, comp, self.parts.store)
        if newest is None:
            raise CortexError("no base yet: no base pointer on chain, no pinned revision, no bootstrap in the store "
                              "(publish one with `cortex base bootstrap --store …`)")
        delay = comp.eval.eligibility_delay_blocks
        blocks = {"sync": sync, **{d.isoformat(): eligible_before(clock, d, delay) - 1 for d in days}}
        bases = bases_at(self.sub, self.cfg.netuid, comp, snap.owner_hotkey, blocks, newest, self.parts.store)
        return bases.pop("sync"), bases

    def _check(self, comp: Competition, cands: Sequence[discovery.Candidate], base: BaseRef, base_dir: Path,
               state: ValidatorState, clock) -> tuple[list[Contender], list[Refused], dict[str, Path]]:
        """Fetch, verify and check every candidate's adapter: the contenders, the refused, the adapters to run.

        An adapter trained on another base than ``base`` (its config's revision) is refused as
        ``stale_base`` this round, and not remembered: the pointer can be rolled back to its base.
        """
        spec = self._spec(base_dir)
        groups: dict[str, list[discovery.Candidate]] = defaultdict(list)
        for c in cands:
            groups[c.model_key].append(c)
        contenders, refused, adapters = [], [], {}
        for key, group in sorted(groups.items()):
            verdict = state.refused.get(key)
            try:
                if verdict is not None:  # a revision never changes: refused once, refused for good
                    raise AdapterRejected(verdict["reason"], verdict["detail"])
                fetched = self.cache.fetch(group[0].commitment.repo_id, group[0].commitment.revision, comp.adapters)
                verified = []
                for c in group:
                    try:
                        verify(fetched, c.commitment, c.hotkey)
                        verified.append(c)
                    except AdapterRejected as exc:
                        refused.append(Refused(c.hotkey, c.uid, key, c.block, exc.reason, exc.message))
                if verified:
                    try:
                        checked = check_adapter(fetched.path, spec, comp.adapters, expected_hash=fetched.content_hash)
                    except AdapterRejected as exc:
                        state.refused[key] = {"reason": exc.reason, "detail": exc.message}
                        raise
                    check_base_revision(checked, base.revision)
                    contenders += [Contender(key, c.hotkey, c.uid, c.block, clock.day(c.block).isoformat())
                                   for c in verified]
                    adapters[key] = fetched.path
            except AdapterRejected as exc:
                refused += [Refused(c.hotkey, c.uid, key, c.block, exc.reason, exc.message) for c in group]
        for r in refused:
            log.info("%s uid %d %s: zero (%s: %s)", comp.id, r.uid, r.key[:60], r.reason, r.detail)
        return contenders, refused, adapters

    def _answer(self, comp: Competition, bases: dict[str, BaseRef], models: Sequence[Model], rows: dict[str, dict],
                block: int) -> dict[str, int]:
        """Generate every answer the ledger lacks, each on its question day's base (``bases``); models missing
        the same questions share the engine's batches. Older bases go first, so the engine left loaded is
        the newest base's.

        The engine is given one question day at a time, its questions in id order: what a row is batched
        with is then fixed by the competition (that day's questions, the competition's batch size), not by
        when this validator started or how many days it is catching up on, so two validators give an
        adapter the same answers (docs/validator.md, "Validators agree")."""
        batches: dict[tuple[str, tuple[str, ...]], list[Model]] = defaultdict(list)
        for m in sorted(models, key=lambda m: m.key):
            by_day: dict[tuple[str, str], list[Question]] = defaultdict(list)
            for q in self.ledger.missing(m.key, m.questions):
                by_day[(str(bases[q.cutoff]), q.cutoff)].append(q)
            for (base_key, _), missing in sorted(by_day.items()):
                missing.sort(key=lambda q: q.id)
                batches[(base_key, tuple(q.id for q in missing))].append(Model(m.key, m.adapter, tuple(missing)))
        generated: dict[str, int] = defaultdict(int)
        refs, last_day = {}, {}
        for day, ref in sorted(bases.items()):
            refs[str(ref)], last_day[str(ref)] = ref, day
        for (base_key, _), members in sorted(batches.items(), key=lambda kv: (last_day[kv[0][0]], kv[0][0])):
            engine = self._engine(comp, self._base(refs[base_key]))
            asked = members[0].questions
            jobs = [Job(m.key, m.adapter) for m in members]
            for result in engine.evaluate([rows[q.id] for q in asked], jobs, reward=comp.reward,
                                          time_budget=comp.eval.time_budget_s):
                entries = _entries(result, asked, block)
                self.ledger.add(entries)  # one transaction per model and batch
                generated[result.key] += len(entries)
                log.info("%s %s: %d answers in %.1fs, %d tokens%s", comp.id, result.key[:60], len(entries),
                         result.seconds, result.new_tokens, f" ({result.reason})" if result.reason else "")
        return dict(sorted(generated.items()))

    def _score_resolved(self, comp: Competition, rows: dict[str, dict], today: str) -> None:
        """Score the stored answers whose outcome is known (``cortex.reward``, against the market data)."""
        from cortex.eval.generate import score_completions

        ready = [e for e in self.ledger.unscored(comp.id, today)
                 if rows.get(e.question, {}).get("outcome_return") is not None]
        if ready:
            rewards, parts = score_completions([e.completion for e in ready], [rows[e.question] for e in ready],
                                               comp.reward)
            self.ledger.set_rewards(scored(e, r, p) for e, r, p in zip(ready, rewards, parts))
            log.info("%s: %d answers scored against their outcomes", comp.id, len(ready))

    # --- parts that are loaded once -------------------------------------------------------

    def _clock(self, sync: int):
        return self.cfg.market_clock(self.sub, sync)

    def _rows(self, comp: Competition, days: Sequence[date]) -> dict[str, dict]:
        """Question id → sample row (prompt from data up to the cutoff; the outcome once its day has closed)."""
        frames = self.source.load(list(comp.eval.assets), days[0] - timedelta(days=HISTORY_LOOKBACK_DAYS), days[-1])
        samples = build_samples(frames, comp.eval.assets, comp.eval.horizons_days, days[0].isoformat(),
                                days[-1].isoformat(), source=self.source.name, synthetic=self.source.is_synthetic,
                                require_outcome=False)
        return {Question(comp.id, s.asset, s.cutoff, s.horizon_days).id: s.row() for s in samples}

    def _base(self, base: BaseRef) -> Path:
        key = str(base)
        if key not in self._bases:
            self._bases[key] = base.fetch(self.parts.store, cache_dir=self.cfg.cache_dir / "bases").path
        return self._bases[key]

    def _spec(self, base_dir: Path) -> BaseSpec:
        key = f"spec:{base_dir}"
        if key not in self._bases:
            self._bases[key] = BaseSpec.from_files(base_dir)
        return self._bases[key]

    def _engine(self, comp: Competition, base_dir: Path) -> Engine:
        held = self._engines.get(comp.id)
        if held is None or held[0] != str(base_dir):
            self._engines.pop(comp.id, None)  # a new base: drop the old one first
            make = self.parts.make_engine or (lambda path, c: build_engine(
                self.cfg.engine, path, c.adapters.types, max_new_tokens=c.eval.max_new_tokens,
                batch_size=c.eval.batch_size, max_rank=c.adapters.max_rank, competition=c.id,
                options=self.cfg.engine_options))
            self._engines[comp.id] = (str(base_dir), make(base_dir, comp))
        return self._engines[comp.id][1]

    # --- results ------------------------------------------------------------------------

    def _publish(self, table: ScoreTable) -> None:
        folder = self.cfg.state_dir / "scores"
        table.write(folder / f"round-{table.round:06d}.json")
        table.write(folder / "latest.json")
        columns = ["uid", "hotkey", "key", "advantage", "ci_low", "ci_high", "days", "reason", "weight"]
        self.wandb.log({"round": table.round, "sync_block": table.sync_block,
                        **{f"{cid}/unearned": t.scores.unearned for cid, t in table.competitions.items()}},
                       tables={f"{cid}/models": (columns, [[getattr(m, c) for c in columns] for m in t.scores.models])
                               for cid, t in table.competitions.items()})


def _entries(result, asked: Sequence[Question], block: int) -> list[LedgerEntry]:
    """One engine result as ledger entries: the answers, or the failure's reason for every question.

    The engine counts tokens per model and batch; they are split evenly over its answers.
    """
    share, extra = divmod(int(result.new_tokens), max(len(asked), 1))
    if result.completions is None:
        reason = (result.reason or "generation_failed").split(":")[0]
        return [entry_for(result.key, q, reason=reason, block=block) for q in asked]
    return [entry_for(result.key, q, completion=text, new_tokens=share + (i < extra), block=block)
            for i, (q, text) in enumerate(zip(asked, result.completions))]


def _metrics(entries: Sequence[LedgerEntry]) -> dict[str, ModelMetrics]:
    """Per model, its entries in the window summed up (answered, resolved, mean reward and parts)."""
    by: dict[str, list[LedgerEntry]] = defaultdict(list)
    for e in entries:
        by[e.model].append(e)
    out = {}
    for model, mine in sorted(by.items()):
        resolved = [e for e in mine if e.reward is not None]
        parsed = [e for e in resolved if e.parts.get("parse_error") is None]

        def mean(values) -> float | None:
            values = [float(v) for v in values if isinstance(v, (int, float))]
            return float(np.mean(values)) if values else None

        out[model] = ModelMetrics(
            answered=len(mine), resolved=len(resolved), failed=sum(e.reason is not None for e in mine),
            mean_reward=mean(e.reward for e in resolved),
            parse_rate=len(parsed) / len(resolved) if resolved else None,
            accuracy=mean(e.parts.get("accuracy") for e in parsed), depth=mean(e.parts.get("depth") for e in parsed),
            penalties=mean(e.parts.get("penalties") for e in parsed), new_tokens=sum(e.new_tokens for e in mine))
    return out

