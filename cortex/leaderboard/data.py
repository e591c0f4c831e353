"""The leaderboard's data: one plain-JSON snapshot of the subnet, from the chain and the state folders.

``snapshot(subtensor, netuid, state_dirs)`` reads, through the bittensor SDK, the metagraph
(incentive, emission, stake, last weight-setting block), validator trust and every commitment
(decoded strictly by ``cortex.chain.commitments.read_all``); and, from the state folders, the
validators' score tables and the averager's round records (``cortex.leaderboard.files``).

Several validators' tables for one round (the same sync block, which every validator derives the
same way) are combined as a **stake-weighted mean** of each model's advantage over the base (and
its interval), mean reward and weight, using each validator's current stake (equal weights when none of them holds stake). The
per-model detail (reward breakdown, backtest metrics, the reason for a zero) comes from the
highest-stake validator that scored the model in its latest round; every validator's own numbers
are listed beside it.

Rows are ranked by on-chain incentive, then by the latest lower bound of the advantage and the mean
reward, then by the earlier commitment. Base pointers (the averager's commitments) are not rows; the averager's rounds
are the ``base_history``; their fixed-benchmark scores of the base, round by round, are the
``base_progress``. ``miners`` is keyed by the uid as a string, as JSON keys are.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bittensor as bt

from cortex.chain.commitments import read_all
from cortex.chain.connect import EMBEDDED, EMBEDDED_LABEL
from cortex.errors import CortexError
from cortex.leaderboard.files import averager_rounds, score_tables

log = logging.getLogger(__name__)

HISTORY_ROUNDS = 8  # rounds of history kept per row
HF_URL = "https://huggingface.co/{repo}/tree/{revision}"


def snapshot(subtensor: bt.Subtensor, netuid: int, state_dirs: Sequence[Path], source: str | None = None) -> dict:
    """Everything the leaderboard shows, as plain JSON-serialisable data (see docs/leaderboard.md).

    ``source``: the market data the live record resolves its questions with (default: synthetic offline,
    Binance on a real network)."""
    graph = subtensor.subnets.metagraph(netuid, commitments=False)
    if graph is None:
        raise CortexError(f"subnet {netuid} does not exist on this chain: check --netuid")
    network = EMBEDDED if subtensor.network == EMBEDDED_LABEL else str(subtensor.network)
    vtrust = subtensor.query(bt.storage.SubtensorModule.ValidatorTrust, [netuid]) or []
    neurons = {n.hotkey: n for n in graph.neurons}
    stake = {n.hotkey: n.total_stake.amount for n in graph.neurons}
    tables = score_tables(state_dirs)
    rounds = _rounds(tables, stake)

    entries: dict[tuple[str, str], dict] = {}  # (competition, hotkey) → the row's chain part
    records = read_all(subtensor, netuid)
    committed = {r.hotkey for r in records}
    for record in records:
        c = record.commitment
        if c is None or c.kind == "base" or record.hotkey not in neurons:
            continue
        entries[(c.competition_id, record.hotkey)] = {
            "repo": c.repo_id, "revision": c.revision, "commit_block": record.block,
            "url": HF_URL.format(repo=c.repo_id, revision=c.revision) if network != EMBEDDED else None}
    on_chain = {hotkey for _, hotkey in entries}
    for r in rounds:  # models scored but no longer (or never readably) committed keep their scored pointer
        for cid, models in r["competitions"].items():
            for hotkey, m in models.items():
                if hotkey in neurons and hotkey not in on_chain:
                    entries[(cid, hotkey)] = {"repo": m["repo"], "revision": m["revision"],
                                              "commit_block": m["commit_block"], "url": None}

    by_comp: dict[str, list[dict]] = defaultdict(list)
    miners: dict[str, dict] = {}
    for (cid, hotkey), entry in entries.items():
        n = neurons[hotkey]
        history = [{"round": r["round"], "sync_block": r["sync_block"], "advantage": m["advantage"],
                    "ci_low": m["ci_low"], "ci_high": m["ci_high"], "days": m["days"],
                    "mean_reward": m["mean_reward"], "weight": m["weight"]}
                   for r in rounds if (m := r["competitions"].get(cid, {}).get(hotkey))][-HISTORY_ROUNDS:]
        last = history[-1] if history else {}
        row = {"rank": 0, "uid": n.uid, "hotkey": hotkey, **entry, "advantage": last.get("advantage"),
               "ci_low": last.get("ci_low"), "ci_high": last.get("ci_high"), "days": last.get("days"),
               "mean_reward": last.get("mean_reward"), "weight": last.get("weight"),
               "incentive": n.incentive, "emission": n.emission.amount, "history": history}
        by_comp[cid].append(row)
        miners[str(n.uid)] = {**row, "competition": cid, **_detail(rounds, cid, hotkey, stake)}
    competitions = []
    for cid in sorted(by_comp):
        rows = sorted(by_comp[cid], key=_rank_key)
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank
            miners[str(row["uid"])]["rank"] = rank
        competitions.append({"id": cid, "base": _base(rounds, cid), "rows": rows})

    validators = _validators(graph.neurons, vtrust, stake, tables, committed)
    history = averager_rounds(state_dirs)
    live = live_record(tables, state_dirs, source or ("synthetic" if network == EMBEDDED else "binance"))
    return {"netuid": netuid, "block": int(graph.block), "network": network, "competitions": competitions,
            "validators": validators, "base_history": history, "base_progress": base_progress(history),
            "live_record": live, "miners": miners}


def live_record(tables: Sequence[dict], state_dirs: Sequence[Path], source: str) -> dict[str, list[dict]]:
    """Per competition, each base's live record (``cortex.leaderboard.live``); {} with a logged warning when
    the market data cannot be read, so the rest of the leaderboard still serves."""
    from cortex.data import get_source
    from cortex.leaderboard.ledgers import live_records

    try:
        return live_records(tables, state_dirs, get_source(source))
    except Exception as exc:  # noqa: BLE001 - market data or a ledger: the leaderboard serves without it
        log.warning("the live record cannot be computed: %s", exc)
        return {}


def base_progress(history: Sequence[dict]) -> dict[str, list[dict]]:
    """Per competition, the base's score on the averager's fixed benchmark questions: the base the first
    recorded round started from (``genesis`` when that round had no published parent merge yet), then the base
    each round left. Only points on the latest question set are kept, so every point compares like with like."""
    out: dict[str, list[dict]] = {}
    for cid in sorted({r["competition"] for r in history if r.get("benchmark_after")}):
        rounds = [r for r in history if r["competition"] == cid and r.get("benchmark_after")]
        questions = rounds[-1]["benchmark_after"]["questions_sha256"]
        rounds = [r for r in rounds if r["benchmark_after"]["questions_sha256"] == questions]
        first = rounds[0]["benchmark_before"]
        points = [_point("genesis" if rounds[0]["round"] == 1 else f"before r{rounds[0]['round']}", None, "start",
                         first)] if first and first["questions_sha256"] == questions else []
        points += [_point(f"r{r['round']}", r["round"], r["status"], r["benchmark_after"]) for r in rounds]
        out[cid] = points
    return out


def _point(label: str, round_: int | None, status: str, score: dict) -> dict:
    return {"label": label, "round": round_, "status": status, "model": score["model"],
            **{k: score[k] for k in ("questions", "mean_reward", "parse_rate", "brier")}, "brier_skill": score.get("brier_skill")}


def _rank_key(row: dict) -> tuple:
    """Incentive, then the latest lower bound of the advantage and the mean reward (unscored last), then
    the earlier commitment."""
    unscored = row["ci_low"] is None
    return (-row["incentive"], unscored, -(row["ci_low"] or 0.0), -(row["mean_reward"] or 0.0),
            row["commit_block"], row["uid"])


def _validators(neurons, vtrust: Sequence[int], stake: dict[str, float], tables: Sequence[dict],
                committed: set[str]) -> list[dict]:
    """Neurons that validate: those that published a score table or have validator trust, and
    permit holders that commit nothing (a permit alone is not enough: small subnets give every
    neuron one, miners included)."""
    published = {t["validator"]: t["sync_block"] for t in tables}
    out = []
    for n in neurons:
        trust = vtrust[n.uid] / 65535 if n.uid < len(vtrust) else 0.0
        if n.hotkey in published or trust > 0 or (n.validator_permit and n.hotkey not in committed):
            out.append({"uid": n.uid, "hotkey": n.hotkey, "stake": stake[n.hotkey], "validator_trust": trust,
                        "dividends": n.dividends, "last_update": n.last_update,
                        "last_scores_block": published.get(n.hotkey)})
    return sorted(out, key=lambda v: (-v["stake"], v["uid"]))


def _weights(validators: Sequence[str], stake: dict[str, float]) -> dict[str, float]:
    """Each validator's share: by stake, or equal when none holds any."""
    total = sum(stake.get(v, 0.0) for v in validators)
    if total <= 0:
        return {v: 1.0 / len(validators) for v in validators}
    return {v: stake.get(v, 0.0) / total for v in validators}


def _rounds(tables: Sequence[dict], stake: dict[str, float]) -> list[dict]:
    """One entry per sync block, oldest first: each model's stake-weighted numbers and every table."""
    groups: dict[int, list[dict]] = defaultdict(list)
    for t in tables:
        groups[t["sync_block"]].append(t)
    out = []
    for sync_block in sorted(groups):
        group = sorted(groups[sync_block], key=lambda t: (-stake.get(t["validator"], 0.0), t["validator"]))
        combined: dict[str, dict[str, dict]] = defaultdict(dict)
        for cid in {c for t in group for c in t["competitions"]}:
            scored: dict[str, list[tuple[str, dict]]] = defaultdict(list)
            for t in group:
                for m in t["competitions"].get(cid, {}).get("models", []):
                    scored[m["hotkey"]].append((t["validator"], m))
            for hotkey, seen in scored.items():
                share = _weights([v for v, _ in seen], stake)
                combined[cid][hotkey] = {
                    **seen[0][1],  # pointer fields from the highest-stake validator
                    **{k: sum(share[v] * (m[k] or 0.0) for v, m in seen) for k in ("advantage", "ci_low", "ci_high", "mean_reward", "weight")}}
        out.append({"sync_block": sync_block, "round": group[0]["round"], "tables": group,
                    "competitions": dict(combined)})
    return out


def _detail(rounds: Sequence[dict], cid: str, hotkey: str, stake: dict[str, float]) -> dict[str, Any]:
    """The model's latest scoring in detail: the highest-stake validator's row, and every validator's."""
    for r in reversed(rounds):
        seen = [(t, m) for t in r["tables"] for m in t["competitions"].get(cid, {}).get("models", [])
                if m["hotkey"] == hotkey]
        if seen:
            top = seen[0][1]
            return {"scored_round": r["round"], "scored_sync_block": r["sync_block"],
                    "scored_revision": top["revision"], "scored_by": seen[0][0]["validator"],
                    "reason": top["reason"], "detail": top["detail"], "earned": top["earned"],
                    "metrics": top["metrics"],
                    "per_validator": [{"validator": t["validator"], "stake": stake.get(t["validator"], 0.0),
                                       "round": t["round"], **{k: m[k] for k in (
                                           "advantage", "ci_low", "ci_high", "days", "mean_reward", "weight",
                                           "reason")}} for t, m in seen]}
    return {"scored_round": None, "scored_sync_block": None, "scored_revision": None, "scored_by": None,
            "reason": None, "detail": None, "earned": None, "metrics": {}, "per_validator": []}


def _base(rounds: Sequence[dict], cid: str) -> dict | None:
    """The base model the latest round of ``cid`` scored, as the highest-stake validator saw it."""
    for r in reversed(rounds):
        for t in r["tables"]:
            comp = t["competitions"].get(cid)
            if comp is not None:
                return {"model": comp["base"], "sync_block": r["sync_block"], **comp["base_model"]}
    return None
