"""The local subnet's schedule: setup, then rounds of miners → validators → Yuma → averager.

One round:

1. **Miners** train on the current base (the newest base pointer) with data that ends before the
   simulated market's present, and publish: upload, commit on chain, make public.
2. The chain moves on to the first round start whose evaluation window admits every commitment
   of the round (an honest validator scores nothing that could have seen its outcomes).
3. **Validators** score every eligible model on the round's evaluation set and set weights; the
   chain holds still meanwhile (``cortex.localnet.blocks``).
4. The chain moves to the next epoch: Yuma Consensus turns the weights into incentive, dividends,
   emission and validator trust.
5. The **averager** merges the winners into a new base, gates it against the current base and the
   best single adapter, and publishes it with a new base pointer, or records why not.

Every process is a `neurons/*.py` child with its own log; a failed child is reported with its log
path and the round goes on without it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cortex.chain.commitments import read_all
from cortex.chain.connect import connect
from cortex.errors import CortexError
from cortex.eval.evalset import SimulatedClock
from cortex.localnet import neurons as N
from cortex.localnet import setup as S
from cortex.localnet.blocks import BlockProducer, first_eligible_sync
from cortex.localnet.config import (
    REPO_ROOT,
    Settings,
    competition,
    write_competition,
    write_miner_config,
)
from cortex.localnet.processes import Supervisor

log = logging.getLogger(__name__)


@dataclass
class RoundReport:
    """What one round did, as the view and the summary show it."""

    round: int
    phase: str = "miners"
    miners: dict[str, dict[str, Any]] = field(default_factory=dict)
    sync_block: int | None = None
    validators: dict[str, dict[str, Any]] = field(default_factory=dict)
    averager: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class Localnet:
    def __init__(self, s: Settings, view) -> None:
        self.s, self.view = s, view
        self.comp = competition(s)
        self.clock = SimulatedClock(s.start_day, s.blocks_per_day)
        self.supervisor = Supervisor(N.child_env(s), REPO_ROOT)
        self.producer: BlockProducer | None = None
        self.members: dict[str, S.Member] = {}
        self.rounds: list[RoundReport] = []
        self.base: dict[str, Any] = {}
        self.trained_on: dict[str, str] = {}  # miner → the base (repo@revision) of its committed adapter
        self.started = time.time()
        self.averager = s.averager and N.averager_available()

    # --- the whole run ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.setup()
            for r in range(1, self.s.rounds + 1):
                self.round(r)
            self.producer.hold()  # the chain stays where the summary reads it
        finally:
            if self.producer is not None:
                self.producer.stop()
            stopped = self.supervisor.stop_all()
            if stopped:
                self.view.note(f"stopped {stopped} running processes")

    def setup(self) -> None:
        s = self.s
        self.view.phase("setup", "chain, wallets, registrations, stakes")
        reuse = S.reusable_base(s)
        S.prepare_workdir(s)
        write_competition(s)
        self.members = S.create_chain(s)
        S.write_plan(s, self.members)
        self.view.members(self.members)
        if reuse:
            revision = S.publish_base(s)
            self.view.note(f"reusing the base bootstrapped earlier in {s.workdir / S.BASE_DIR} ({revision[:12]})")
        else:
            self.view.phase("setup", f"bootstrapping the tiny base ({s.base_steps} steps)")
            child = self.supervisor.run([S.bootstrap_command(s)], jobs=1, timeout=s.phase_timeout,
                                        tick=self.view.refresh)[0]
            if not child.ok:
                raise CortexError(f"bootstrapping the base failed ({child.state}); see {child.command.log}")
            revision = S.base_report(s)["revision"]
        report = S.base_report(s)
        check = report["format_check"]
        self.base = {"revision": revision, "parse_rate": check["parse_rate"], "mean_reward": check["mean_reward"],
                     "steps": s.base_steps, "seconds": report["seconds"]["total"]}
        self.view.note(f"base {S.BASE_REPO}@{revision[:12]}: parse rate {check['parse_rate']:.0%}, mean reward "
                       f"{check['mean_reward']:+.3f} on {check['prompts']} held-out prompts")
        block = S.commit_genesis_pointer(s, revision, self.comp.id)
        self.view.note(f"the subnet owner committed the genesis base pointer at block {block}")
        self.producer = BlockProducer(s.chain_path, s.block_time).start()
        self.view.attach_chain(self.producer)
        self._to_next_epoch()  # validators hold permits from the first epoch on

    # --- one round ----------------------------------------------------------------------------

    def round(self, r: int) -> None:
        s, report = self.s, RoundReport(r)
        self.rounds.append(report)
        self.view.round(report)
        started = time.time()
        # market days whose outcomes (up to the longest horizon) are known now
        data_end = self.clock.day(self.producer.head) - timedelta(days=max(self.comp.eval.horizons_days))
        base = self._current_base()
        training = [(k, name) for k, name in enumerate(s.miner_names())
                    if s.retrain == "always" or self.trained_on.get(name) != base]
        for name in sorted(set(s.miner_names()) - {name for _, name in training}):
            report.miners[name] = {"kept": True, "reason": f"the base is still {base.split('@')[-1][:12]}: "
                                                          "its adapter stays committed"}
        if training:
            commands = [N.miner_command(s, name, r, write_miner_config(s, k, r, data_end)) for k, name in training]
            self._phase(report, "miners", f"{len(commands)} miners train on {base.split('@')[-1][:12]} and publish "
                                          f"(data to {data_end})", commands)
        else:
            self.view.note(f"round {r}: the base did not move; every miner keeps its committed adapter")
        for _, name in training:
            report.miners[name] = outcome = _miner_outcome(N.miner_metrics(s, name, r))
            if outcome["published"]:
                self.trained_on[name] = outcome["base"]
        report.seconds["miners"] = time.time() - started

        started = time.time()
        self.producer.hold()
        report.sync_block = self._to_eligible_sync()
        self._phase(report, "validators", f"validators score the round at block {report.sync_block}",
                    [N.validator_command(s, name, r) for name in s.validator_names()])
        for name in s.validator_names():
            report.validators[name] = _validator_outcome(N.score_table(s, name), report.sync_block)
        self._to_next_epoch()
        self.producer.release()
        report.seconds["validators"] = time.time() - started

        if self.averager:
            started = time.time()
            before = len(N.averager_rounds(s))
            self._phase(report, "averager", "the averager merges the winners and gates the merge",
                        [N.averager_command(s, r)], jobs=1)
            records = N.averager_rounds(s)
            report.averager = records[-1] if len(records) > before else None
            report.seconds["averager"] = time.time() - started
        report.phase = "done"
        self.view.round(report)

    def _phase(self, report: RoundReport, phase: str, text: str, commands, jobs: int | None = None) -> None:
        report.phase = phase
        self.view.phase(f"round {report.round}/{self.s.rounds}: {phase}", text)
        children = self.supervisor.run(commands, jobs=jobs or self.s.jobs, timeout=self.s.phase_timeout,
                                       tick=self.view.refresh)
        for child in children:
            if not child.ok:
                self.view.failure(child)

    # --- blocks ---------------------------------------------------------------------------------

    def _to_eligible_sync(self) -> int:
        """Advance to the first round start whose window admits every model committed so far."""
        sub = connect("embedded", self.s.chain_path)
        blocks = [rec.block for rec in read_all(sub, self.s.netuid)
                  if rec.commitment is not None and rec.commitment.kind == "adapter"]
        head = self.producer.head
        sync = first_eligible_sync(head + 1, max(blocks, default=0), self.s.tempo, self.clock, self.comp.eval)
        return self.producer.advance_to(sync)

    def _current_base(self) -> str:
        """``repo@revision`` of the newest base pointer (the owner's genesis pointer, then the averager's)."""
        sub = connect("embedded", self.s.chain_path)
        owner = self.members["owner"].hotkey
        pointers = [rec for rec in read_all(sub, self.s.netuid)
                    if rec.commitment is not None and self.comp.is_base_pointer(rec.commitment, rec.hotkey, owner)]
        if not pointers:
            raise CortexError("no base pointer on chain: the genesis pointer is missing")
        newest = max(pointers, key=lambda rec: rec.block).commitment
        return f"{newest.repo_id}@{newest.revision}"

    def _to_next_epoch(self) -> int:
        sub = connect("embedded", self.s.chain_path)
        wait = sub.epochs.blocks_until_next_epoch(self.s.netuid)
        head = self.producer.head
        return self.producer.advance_to(head + max(1, int(wait or self.s.tempo)))


def _miner_outcome(metrics: dict[str, Any]) -> dict[str, Any]:
    published = metrics.get("published")
    return {"published": published, "revision": published.rsplit("@", 1)[1] if published else None,
            "reason": metrics.get("publish_reason"), "heldout_adapter": metrics.get("heldout_reward_adapter"),
            "heldout_base": metrics.get("heldout_reward_base"), "block": metrics.get("published_block"),
            "base": metrics.get("base")}


def _validator_outcome(table: dict[str, Any], sync_block: int | None) -> dict[str, Any]:
    if not table or table.get("sync_block") != sync_block:
        return {"scored": False}
    comps = table.get("competitions", {})  # a cortex.protocol.scores.ScoreTable as JSON
    models = [m for c in comps.values() for m in c.get("scores", {}).get("models", []) + c.get("refused", [])]
    base = next((c.get("metrics", {}).get(c.get("base"), {}) for c in comps.values()), {})
    return {"scored": True, "weights_set": table.get("weights_set"), "models": len(models),
            "base_reward": base.get("mean_reward"), "weights": table.get("weights", {})}
