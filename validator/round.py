"""One validator round, end to end (issue 5), and the loop that runs one per tempo.

sync the metagraph and commitments → per active competition: the eval window and set (drawn from
the sync block's hash), the base (pinned or the averager's pointer), fetch + verify + check every
eligible adapter, evaluate the base and each new adapter (state saved after every model) → score
→ weights (softmax, smoothed, split by share) → ``bt.SetWeights`` → the score table (JSON beside
the state file, and wandb when enabled).

The sync block is the round's first block (``cortex.eval.evalset.sync_block``), so every validator
running in the same tempo draws the same evaluation set and applies the same eligibility cutoff.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bittensor as bt

from cortex.atomic import write_json
from cortex.data import get_source
from cortex.errors import CortexError
from cortex.eval.engines import Engine, EngineOptions, Job, build_engine
from cortex.eval.evalset import market_clock, round_rows, sync_block, window
from cortex.hub.store import ModelStore
from cortex.protocol.competition import Competition, CompetitionSchedule
from cortex.protocol.hashing import content_hash
from validator import discovery
from validator.checks import AdapterRejected, BaseSpec, check_adapter
from validator.config import WEIGHTS_VERSION, ValidatorConfig
from validator.fetch import AdapterCache, FetchRejected, verify
from validator.state import ModelResult, RoundProgress, load, save
from validator.weights import combine, evaluation_summary, score_competition, set_weights, to_uids

log = logging.getLogger(__name__)
FINISHED = "#finished"  # progress entry written once a round's weights are decided


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


class Validator:
    def __init__(self, parts: Parts) -> None:
        self.parts, self.cfg, self.sub = parts, parts.config, parts.sub
        self.cache = AdapterCache(parts.store, self.cfg.cache_dir / "adapters")
        self.source = get_source(self.cfg.source)
        self.hotkey = parts.wallet.hotkey.ss58_address
        self._engines: dict[str, tuple[str, Engine]] = {}  # competition → (base folder, engine)
        self._bases: dict[str, Any] = {}
        self._wandb: Any = None

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        """One round (``--once``), or one per round forever; a failed round is logged and retried later."""
        while True:
            if self.cfg.once:
                self.run_round()
                return
            try:
                table = self.run_round()
                target = table["sync_block"] + table["round_blocks"]
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

    def run_round(self) -> dict:
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
            state.progress = RoundProgress(key, {})
            save(cfg.state, state)
        elif FINISHED in state.progress.done:
            finished = state.progress.done[FINISHED]
            if state.last_weights_block < sync:  # decided but not yet on chain: only set them
                self._set(state, {int(u): w for u, w in finished["weights"].items()}, snap)
            log.info("round %d (sync block %d) is already done", state.round, sync)
            return {"round": state.round, "sync_block": sync, "round_blocks": interval, "done": True}
        log.info("round %d: sync block %d, %d competitions active", state.round, sync, len(active))
        block_hash = self.sub.chain.block_info(sync)["hash"]
        ids = {c.id for c in active}
        tables = {}
        for comp in active:
            try:
                tables[comp.id] = self._competition(comp, snap, sync, block_hash, state, ids)
            except CortexError as exc:  # no base yet, no data: skip this competition this round
                log.error("%s: not scored this round: %s", comp.id, exc)
        smoothed, weights = combine({c: t["softmax"] for c, t in tables.items()}, state.smoothed, cfg.alpha,
                                    self.parts.schedule.shares(sync), set(snap.uids))
        state.smoothed.update(smoothed)
        uid_weights = to_uids(weights, snap.uids)
        if tables and not uid_weights and snap.owner_hotkey in snap.uids:
            log.warning("no model earned weight this round: weight goes to the subnet owner's uid")
            uid_weights = {snap.uids[snap.owner_hotkey]: 1.0}
        table = self._record(state, tables, smoothed, weights, sync, block_hash, interval)
        table["weights"] = {str(u): w for u, w in sorted(uid_weights.items())}
        state.progress.done = {FINISHED: {"weights": {str(u): w for u, w in uid_weights.items()}}}
        save(cfg.state, state)
        table["weights_set"] = self._set(state, uid_weights, snap)
        self._publish(table)
        return table

    def _set(self, state, uid_weights: dict[int, float], snap: discovery.Snapshot) -> bool:
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

    def _competition(self, comp: Competition, snap, sync: int, block_hash: str, state, active: set[str]) -> dict:
        win = window(self._clock(sync), sync, comp.eval)
        cands, ignored = discovery.candidates(snap, comp, win, active)
        for i in ignored:
            log.info("uid %s %s…: ignored (%s): %s", i.uid, i.hotkey[:8], i.reason, i.detail)
        base = discovery.resolve_base(snap, comp, self.parts.store)
        if base is None:
            raise CortexError("no base yet: no base pointer on chain, no pinned revision, no bootstrap in the store "
                              "(publish one with `cortex base bootstrap --store …`)")
        base_dir = self._base(base)
        rows = round_rows(comp, self.source, win, block_hash)
        done, spec = state.progress.done, self._spec(base_dir)

        def pkey(model_key: str) -> str:
            return f"{comp.id}@{model_key}"

        jobs, refused = ([] if pkey("base") in done else [Job("base", None)]), {}
        groups: dict[str, list[discovery.Candidate]] = {}
        for c in cands:
            groups.setdefault(c.model_key, []).append(c)
        for model_key, group in sorted(groups.items()):
            entry = done.get(pkey(model_key))
            if entry is not None and entry.get("reason"):
                continue
            repo, revision = group[0].commitment.repo_id, group[0].commitment.revision
            try:
                fetched = self.cache.fetch(repo, revision, comp.adapters)
                verified = []
                for c in group:
                    try:
                        verify(fetched, c.commitment, c.hotkey)
                        verified.append(c)
                    except FetchRejected as exc:
                        refused[c.hotkey] = (exc.reason, exc.message)
                if verified and entry is None:
                    check_adapter(fetched.path, spec, comp.adapters, expected_hash=fetched.content_hash)
                    jobs.append(Job(model_key, fetched.path))
            except (FetchRejected, AdapterRejected) as exc:
                done[pkey(model_key)] = {"reason": exc.reason, "detail": exc.message}
                save(self.cfg.state, state)
        engine = self._engine(comp, base_dir)
        for result in engine.evaluate(rows, jobs, reward=comp.reward, time_budget=comp.eval.time_budget_s):
            done[pkey(result.key)] = evaluation_summary(result, rows)
            save(self.cfg.state, state)
            log.info("%s %s: evaluated in %.1fs (%s)", comp.id, result.key, result.seconds,
                     result.reason or f"mean reward {result.mean_reward:+.3f}, parse rate {result.parse_rate:.0%}")
        results = {key.split("@", 1)[1]: entry for key, entry in done.items() if key.startswith(f"{comp.id}@")}
        table = score_competition(comp, cands, refused, results, rows, sync)
        table.update(base=str(base), window=[win.start.isoformat(), win.end.isoformat()],
                     eligible_before_block=win.eligible_before_block, ignored=[asdict(i) for i in ignored])
        return table

    # --- parts that are loaded once -------------------------------------------------------

    def _clock(self, sync: int):
        return market_clock(self.cfg.clock, self.sub, sync, self.cfg.start_day, self.cfg.blocks_per_day)

    def _base(self, base: discovery.BaseChoice) -> Path:
        from cortex.model.loading import fetch_base

        key = f"{base.repo}@{base.revision}"
        if key not in self._bases:
            path = fetch_base(base.repo, base.revision, self.parts.store, cache_dir=self.cfg.cache_dir / "bases")
            if base.pointer is not None and not base.pointer.verify(content_hash(path), base.hotkey or ""):
                raise CortexError(f"the base pointer's hash does not match {base}'s files: not using it")
            self._bases[key] = path
        return self._bases[key]

    def _spec(self, base_dir: Path):
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
                options=EngineOptions(device=self.cfg.device, max_loras=self.cfg.max_loras)))
            self._engines[comp.id] = (str(base_dir), make(base_dir, comp))
        return self._engines[comp.id][1]

    # --- results ------------------------------------------------------------------------

    def _record(self, state, tables, smoothed, weights, sync, block_hash, interval) -> dict:
        for cid, t in tables.items():
            base = t["base_model"]
            state.base_history = (state.base_history + [{"round": state.round, "competition": cid, "base": t["base"],
                                  "win_rate": base["win_rate"], "mean_reward": base["mean_reward"]}])[-64:]
            log.info("%s: base %s: win rate %.3f, mean reward %+.3f", cid, t["base"], base["win_rate"],
                     base["mean_reward"])
            for m in t["models"]:
                m["smoothed"] = smoothed.get(cid, {}).get(m["hotkey"], 0.0)
                m["weight"] = weights.get(m["hotkey"], 0.0)
                state.record(m["hotkey"], ModelResult(
                    state.round, cid, m["uid"], m["repo"], m["revision"], m["commit_block"], m["win_rate"],
                    m["mean_reward"], m["mean_advantage"], m["weight"], m["reason"], m["metrics"]))
                what = (f"zero ({m['reason']}: {m['detail']})" if m["reason"] else
                        f"win rate {m['win_rate']:.3f}, mean reward {m['mean_reward']:+.3f}, advantage "
                        f"{m['mean_advantage']:+.2f} → softmax {m['softmax']:.3f}, smoothed {m['smoothed']:.3f}")
                log.info("%s uid %d %s@%s: %s → weight %.4f", cid, m["uid"], m["repo"], m["revision"][:8], what,
                         m["weight"])
        return {"round": state.round, "sync_block": sync, "block_hash": block_hash, "round_blocks": interval,
                "validator": self.hotkey, "version_key": WEIGHTS_VERSION, "competitions": tables}

    def _publish(self, table: dict) -> None:
        folder = self.cfg.state_dir / "scores"
        write_json(folder / f"round-{table['round']:06d}.json", table)
        write_json(folder / "latest.json", table)
        if self.cfg.wandb:
            if self._wandb is None:
                self._wandb = WandbLog(self.cfg, self.hotkey)
            self._wandb.log(table)


class WandbLog:
    """The score table to wandb (offline files under the state folder by default); never fatal."""

    def __init__(self, cfg: ValidatorConfig, hotkey: str) -> None:
        self.cfg, self.hotkey, self.run, self.off = cfg, hotkey, None, False

    def log(self, table: dict) -> None:
        if self.off:
            return
        try:
            import wandb

            if self.run is None:
                self.run = wandb.init(project=self.cfg.wandb_project, mode=self.cfg.wandb_mode,
                                      dir=str(self.cfg.state_dir), name=f"validator-{self.hotkey[:8]}",
                                      config={"netuid": self.cfg.netuid, "hotkey": self.hotkey,
                                              "version_key": WEIGHTS_VERSION})
            data: dict[str, Any] = {"round": table["round"], "sync_block": table["sync_block"]}
            columns = ["uid", "hotkey", "repo", "revision", "win_rate", "mean_reward", "weight", "reason"]
            for cid, t in table["competitions"].items():
                data[f"{cid}/base_win_rate"] = t["base_model"]["win_rate"]
                data[f"{cid}/models"] = wandb.Table(columns=columns, data=[[m[c] for c in columns] for m in t["models"]])
            self.run.log(data)
        except Exception as exc:  # noqa: BLE001 - logging must never stop a validator
            log.warning("wandb logging failed (%s); continuing without it", exc)
            self.off = True
            if self.run is not None:
                with contextlib.suppress(Exception):
                    self.run.finish()
