"""One averager round end to end, and the service that runs one every K epochs.

metagraph + commitments → choose (``averager.select``: incentive, the validators' tables, caps,
clipping, duplicates, outliers) → fetch and check every input → merge into the current base
(``averager.stream``, atomic) → gate (``averager.gate``) → publish and commit the pointer
(``averager.publish``), or record the round as rejected and change nothing.

Each round leaves one record, a :class:`cortex.protocol.rounds.AveragerRound` in
``<state>/rounds/round-NNNNNN.json`` and ``<state>/rounds/latest.json`` (written atomically;
docs/averager.md lists the keys). Work happens under ``<state>/work`` and is
removed at the end of the round and at the start of the next one, so a killed round leaves nothing
that a restart could publish half-made: the merge is rebuilt from the inputs, the upload of the same
content gives the same revision, and the same pointer is never committed twice.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bittensor as bt

from averager import select as S
from averager.config import AveragerConfig
from cortex.adapter import Adapter, AdapterRejected, BaseSpec, check_base_revision, load_adapter
from cortex.adapter.fetch import AdapterCache, verify
from cortex.chain.commitments import OnChainCommitment, read_all
from cortex.errors import CortexError
from cortex.hub.store import ModelStore, StoreError
from cortex.model.pointer import BaseRef, current_base
from cortex.protocol.records import RecordError
from cortex.protocol.rounds import AveragerRound, Manifest, MergeReport
from cortex.protocol.scores import ScoreTable
from cortex.wandb_log import WandbLog

log = logging.getLogger(__name__)


@dataclass
class Parts:
    config: AveragerConfig
    sub: bt.Subtensor
    wallet: bt.Wallet
    store: ModelStore


class Averager:
    def __init__(self, parts: Parts) -> None:
        self.parts, self.cfg, self.sub, self.store = parts, parts.config, parts.sub, parts.store
        self.comp = self.cfg.competition
        self.rounds = Path(self.cfg.state) / "rounds"
        self.work_root = Path(self.cfg.state) / "work"
        self.wandb = WandbLog(self.cfg.wandb, folder=self.cfg.state, project="cortex-averager",
                              name=f"averager-{self.cfg.wallet_name}-{self.cfg.wallet_hotkey}")

    # --- the service ----------------------------------------------------------------------

    def run(self) -> AveragerRound | None:
        """One round (``--once``), or one every ``every_epochs`` tempos; a failed round is retried later."""
        while True:
            try:
                record = self.run_round()
            except CortexError:
                if self.cfg.once:
                    raise
                log.exception("the round failed; retrying next epoch")
                record = None
            if self.cfg.once:
                return record
            tempo = int(self.sub.subnets.metagraph(self.cfg.netuid, commitments=False).tempo) or 1
            head = int(self.sub.block)
            target = head - head % tempo + self.cfg.every_epochs * tempo + 1  # just after the epoch's Yuma step
            log.info("next round at block %d (every %d epochs)", target, self.cfg.every_epochs)
            self.sub.wait_for_block(target)

    # --- one round ------------------------------------------------------------------------

    def last_round(self) -> int:
        """The number of the last round recorded (0 before the first); an unreadable record stops the averager
        rather than numbering a round twice."""
        latest = self.rounds / "latest.json"
        return AveragerRound.read(latest).round if latest.is_file() else 0

    def run_round(self) -> AveragerRound:
        """Run one round and return its record (also written under ``<state>/rounds``)."""
        round_no = self.last_round() + 1
        if self.work_root.exists():
            log.warning("removing %s left by an interrupted round: nothing of it was published", self.work_root)
            shutil.rmtree(self.work_root)
        work = self.work_root / f"round-{round_no:06d}"
        work.mkdir(parents=True)
        graph = self.sub.subnets.metagraph(self.cfg.netuid, commitments=False)
        if graph is None:
            raise CortexError(f"subnet {self.cfg.netuid} does not exist on this chain: check --netuid")
        record: dict[str, Any] = {  # AveragerRound's fields, filled in as the round goes
            "round": round_no, "block": int(graph.block), "competition": self.comp.id, "method": self.cfg.method}
        try:
            self._round(record, graph, work)
            self._benchmark(record, work / "merged")
        finally:
            shutil.rmtree(self.work_root, ignore_errors=True)
        done = AveragerRound(**record)
        self._write(done)
        return done

    def _round(self, record: dict[str, Any], graph: Any, work: Path) -> None:
        base = current_base(self.sub, self.cfg.netuid, self.comp, self.store)
        if base is None:
            record["reason"] = "no base yet: no pointer, no pinned revision, no bootstrap in the store"
            return
        record["parent"] = str(base)
        self._parent = base  # for the benchmark, whatever the round's outcome
        records = read_all(self.sub, self.cfg.netuid)
        uids = {n.hotkey: int(n.uid) for n in graph.neurons}
        choices = S.from_chain(records, uids, {int(n.uid): float(n.incentive) for n in graph.neurons}, self.comp.id)
        tables = self._tables()
        if self.cfg.scores and not tables:
            record["reason"] = "no readable validator score table among --scores"
            return
        choices = S.top(self._not_merged_yet(S.cross_check(choices, tables, self.comp.id), base, work),
                        self.cfg.select.max_inputs)
        by_hotkey = {r.hotkey: r for r in records}
        adapters, choices = self._fetch(choices, by_hotkey, base, Path(self.cfg.state) / "cache" / "adapters")
        from averager.geometry import gram

        live = [c for c in choices if c.decision == S.KEPT]
        choices = S.plan(choices, gram([adapters[c.hotkey] for c in live]), self.cfg.select)
        record["inputs"] = choices  # each Choice is the record's RoundInput
        chosen = S.kept(choices)
        if not chosen:
            record["reason"] = "no input survived the selection"
            return
        base_dir = self._base_dir(base)
        merged, report = self._merge(base_dir, [(adapters[c.hotkey], c.weight) for c in chosen], work)
        record["energy_kept"] = report.energy or None
        gate = self._gate(base_dir, merged, {c.model_key: adapters[c.hotkey].path for c in chosen}, record["block"])
        if not gate.passed and len(chosen) > 1:
            soup = self._soup(base_dir, chosen, adapters, gate, work)
            if soup is not None:
                inputs, report, gate = soup
                decided = {c.hotkey: c for c in inputs}
                record["inputs"] = choices = [decided.get(c.hotkey, c) for c in choices]
                chosen = S.kept(inputs)
                record["energy_kept"] = report.energy or None
        if gate.passed and self.cfg.format_prompts:
            gate = self._format(base_dir, work / "merged", gate)
        record["gate"] = gate
        if not gate.passed:
            record.update(status="rejected", reason=f"gate: {gate.reason}")
            log.warning("round %d rejected: %s; the base stays %s", record["round"], gate.reason, base)
            return
        self._publish(record, chosen, report, merged)

    def _publish(self, record: dict[str, Any], chosen: list[S.Choice], report: MergeReport, merged: Path) -> None:
        from averager.publish import finalise, manifest, publish_base

        repo, hotkey = self.cfg.base_repo, self.parts.wallet.hotkey.ss58_address
        man = manifest(self.comp, record["round"], record["parent"], chosen, report, record["gate"], hotkey)
        finalise(merged, man, repo)
        done = publish_base(self.sub, self.parts.wallet, self.cfg.netuid, self.store, self.comp, repo, merged)
        record.update(status="published", reason="gate passed", published=f"{done.repo}@{done.revision}",
                      pointer_block=done.block)
        log.info("round %d published %s@%s; base pointer committed at block %d", record["round"], done.repo,
                 done.revision, done.block)

    # --- steps ----------------------------------------------------------------------------

    def _tables(self) -> list[ScoreTable]:
        tables = []
        for path in self.cfg.scores:
            try:
                tables.append(ScoreTable.read(path))
            except RecordError as exc:
                log.warning("score table %s is not usable (%s); skipping it", path, exc)
        return tables

    def _not_merged_yet(self, choices: list[S.Choice], base: BaseRef, work: Path) -> list[S.Choice]:
        """Drop inputs the current base already holds (its manifest lists them)."""
        from averager.publish import MANIFEST

        try:
            folder = self.store.download(base.repo, base.revision, work / "parent", allow=[MANIFEST],
                                         max_bytes=16 << 20)
        except StoreError:
            return choices
        if not (folder / MANIFEST).is_file():
            return choices  # a bootstrap or pinned base: no manifest
        try:
            merged = Manifest.read(folder / MANIFEST).models
        except RecordError as exc:
            log.warning("the current base's manifest is not readable (%s): merging as if it held no input", exc)
            return choices
        return [c.drop("already_merged", f"the current base {base.revision[:12]} already holds it")
                if c.decision == S.KEPT and c.model_key in merged else c for c in choices]

    def _fetch(self, choices: list[S.Choice], records: dict[str, OnChainCommitment], base: BaseRef,
               root: Path) -> tuple[dict[str, Adapter], list[S.Choice]]:
        """Fetch, verify and check each kept input exactly as a validator does; drop what fails.

        In the validator's order (``validator.round``): the one fetch (``cortex.adapter.fetch``: the
        listing, the download, cached by revision under ``root``), the salted hash of the files
        (``hash_mismatch``), then ``cortex.adapter``'s checks against the base's ``BaseSpec`` and the
        competition's limits; a refused adapter is dropped with the validator's reason code.
        """
        limits, adapters, out = self.comp.adapters, {}, []
        spec, cache = self._spec(self._base_dir(base)), AdapterCache(self.store, root)
        for c in choices:
            if c.decision != S.KEPT:
                out.append(c)
                continue
            try:
                fetched = cache.fetch(c.repo, c.revision, limits)
                verify(fetched, records[c.hotkey].commitment, c.hotkey)
                adapter = load_adapter(fetched.path, spec, limits, expected_hash=fetched.content_hash)
                check_base_revision(adapter.checked, base.revision)  # trained on another base: stale_base
            except AdapterRejected as exc:
                out.append(c.drop(exc.reason, exc.message))
                continue
            adapters[c.hotkey] = adapter
            out.append(c)
        return adapters, out

    def _benchmark(self, record: dict[str, Any], merged: Path) -> None:
        """The fixed benchmark's score (``--benchmark``) of the base the round started from and of the base it
        leaves: the merge when published, else the same base. Each revision is scored once (cached)."""
        if self.cfg.benchmark is None or getattr(self, "_parent", None) is None:
            return
        from cortex.eval.benchmark import Benchmark

        if getattr(self, "_bench", None) is None:
            self._bench = Benchmark(self.cfg.benchmark, Path(self.cfg.state) / "benchmark", self.comp, self.cfg.device)
        parent = self._base_dir(self._parent)
        before = self._bench.score(str(self._parent), Path(getattr(parent, "path", parent)))
        after = self._bench.score(record["published"], merged) if record.get("published") else before
        record.update(benchmark_before=before, benchmark_after=after)

    def _base_dir(self, base: BaseRef) -> Path:
        """The base's files, fetched and checked against its pointer once per process."""
        held = self.__dict__.setdefault("_bases", {})
        if str(base) not in held:
            held[str(base)] = base.fetch(self.store, Path(self.cfg.state) / "cache" / "bases").path
        return held[str(base)]

    def _spec(self, base_dir: Path) -> BaseSpec:
        """The base's ``BaseSpec`` (shapes and weight norms), read once per base folder."""
        held = self.__dict__.setdefault("_specs", {})
        if base_dir not in held:
            held[base_dir] = BaseSpec.from_files(base_dir)
        return held[base_dir]

    def _merge(self, base_dir: Path, weighted: list, work: Path) -> tuple[Path, MergeReport]:
        from averager.stream import load_rank_r, merge_exact, merge_rank_r

        out, progress = work / "merged", self.cfg.progress
        if self.cfg.method == "exact":
            return out, merge_exact(base_dir, weighted, out, dtype=self.cfg.dtype, progress=progress)
        delta = merge_rank_r(base_dir, weighted, work / "delta", self.cfg.rank, progress=progress)
        own = load_rank_r(work / "delta", self._spec(base_dir), self.cfg.rank)
        folded = merge_exact(base_dir, [(own, 1.0)], out, dtype=self.cfg.dtype,
                             progress=progress)
        return out, dataclasses.replace(delta, dtype=folded.dtype)

    def _soup(self, base_dir: Path, chosen: list[S.Choice], adapters: dict[str, Adapter], gate, work: Path):
        """After a blend failed the gate: the greedy soup over the inputs, best single first (``averager.gate``).
        Its merge replaces ``work/merged``; returns (the blend's inputs with their soup weights or dropped as
        ``not_in_soup``, the merge report, the gate's verdict on it), or None when no input has a gate score."""
        from averager.gate import decide, forecasts_no_worse, greedy_soup, score_model

        singles, skills = gate.singles or {}, gate.singles_brier_skill or {}
        # an input that forecasts worse than the base on the gate's prompts would take the soup down with it
        order = sorted((c for c in chosen if singles.get(c.model_key) is not None
                        and forecasts_no_worse(skills.get(c.model_key), gate.base_brier_skill)),
                       key=lambda c: (-singles[c.model_key], c.commit_block))
        if not order:
            return None
        by_key, merges = {c.model_key: c for c in order}, {}

        def merge(keys: list[str]) -> Path:
            folder = work / f"soup-{len(merges)}"
            folder.mkdir()
            merges[tuple(keys)] = self._merge(base_dir, [(adapters[by_key[k].hotkey], 1 / len(keys)) for k in keys],
                                              folder)
            return merges[tuple(keys)][0]

        rows, scores = self._gate_rows, {}

        def score(keys: list[str]) -> float | None:
            got = scores[tuple(keys)] = score_model(merge(keys), rows, self.comp, f"soup of {len(keys)}",
                                                    self.cfg.device)
            return got.reward if forecasts_no_worse(got.brier_skill, gate.base_brier_skill) else None

        keys, best, steps = greedy_soup([c.model_key for c in order], singles[order[0].model_key], score)
        if tuple(keys) not in merges:  # the best single alone, merged at full weight
            merge(keys)
        merged, report = merges[tuple(keys)]
        final = scores[tuple(keys)] if len(keys) > 1 else score_model(merged, rows, self.comp, "soup", self.cfg.device)
        verdict = decide(final.reward, gate.base_reward, singles, self.cfg.margin, against_best=len(keys) > 1,
                         merged_skill=final.brier_skill, base_skill=gate.base_brier_skill)
        verdict = dataclasses.replace(verdict, prompts=gate.prompts, soup=steps, merged_failures=final.failures,
                                      base_failures=gate.base_failures)
        log.info("greedy soup of %d: %s", len(keys), verdict.reason)
        shutil.rmtree(work / "merged")
        merged.rename(work / "merged")
        weight = 1 / len(keys)
        inputs = [dataclasses.replace(c, weight=weight, reason="selected",
                                      detail=f"greedy soup member ({weight:.3g} each); {c.detail}")
                  if c.model_key in keys else c.drop("not_in_soup", "the blend failed the gate and the greedy soup "
                                                                    "did not improve with it (or it forecast worse "
                                                                    "than the base on the gate's prompts)")
                  for c in chosen]
        return inputs, report, verdict

    def _gate(self, base_dir: Path, merged: Path, adapters: dict[str, Path], block: int):
        from averager.gate import gate_rows, run_gate
        from cortex.data import get_source
        from cortex.eval.evalset import gate_window, sync_block

        tempo = int(self.sub.subnets.metagraph(self.cfg.netuid, commitments=False).tempo) or 1
        sync = sync_block(block, tempo)
        clock = self.cfg.market_clock(self.sub, sync)
        block_hash = self.sub.chain.block_info(sync)["hash"]
        rows = gate_rows(self.comp, get_source(self.cfg.source), gate_window(clock, sync, self.comp.eval), block_hash)
        self._gate_rows = rows  # the greedy soup scores on the same rows
        self._gate_draw = (clock, sync, block_hash)  # and the format check draws its prompts at the same block
        return run_gate(base_dir, merged, adapters, rows, self.comp, self.cfg.margin, self.cfg.device)

    def _format(self, base_dir: Path, merged: Path, gate):
        """The format rule on a passed gate (``averager.gate.check_format``): ``--format-prompts`` more prompts."""
        from averager.gate import check_format, format_rows
        from cortex.data import get_source

        clock, sync, block_hash = self._gate_draw
        try:
            rows = format_rows(self.comp, get_source(self.cfg.source), clock, sync, block_hash, self.cfg.format_prompts)
        except CortexError as exc:  # no market data that far back: the gate's own prompts are all there is
            log.warning("format check: %s; counting the gate's prompts only", exc)
            rows = []
        return check_format(gate, base_dir, merged, rows, self.comp, self.cfg.max_format_loss, self.cfg.device)

    def _write(self, record: AveragerRound) -> None:
        record.write(self.rounds / f"round-{record.round:06d}.json")
        record.write(self.rounds / "latest.json")
        log.info("round %d: %s (%s)", record.round, record.status, record.reason)
        gate = record.gate.to_json() if record.gate else {}
        self.wandb.log({"round": record.round, "published": int(record.status == "published"),
                        "inputs": sum(i.decision == S.KEPT for i in record.inputs),
                        **{f"gate/{k}": v for k, v in gate.items() if isinstance(v, (int, float)) and k != "schema"}})

