"""The end-of-run summary, built from the leaderboard's own snapshot so both show the same numbers.

``cortex.leaderboard.data.snapshot`` reads the chain (incentive, emission, validator trust, stake,
commitments) through the SDK and the validators' and averager's state folders; the summary only
picks and labels its fields. The local run adds what only it knows: wallet names, the bootstrap,
each round's timings and the processes that failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cortex.atomic import write_json
from cortex.chain.connect import connect
from cortex.localnet import neurons as N
from cortex.localnet.config import Settings


def state_dirs(s: Settings) -> list[Path]:
    """Every folder the leaderboard reads for this subnet: each validator's, and the averager's."""
    return [*s.validator_state_dirs(), N.averager_dir(s)]


def take_snapshot(s: Settings) -> dict[str, Any]:
    from cortex.leaderboard.data import snapshot

    return snapshot(connect("embedded", s.chain_path), s.netuid, state_dirs(s))


def build(s: Settings, snap: dict[str, Any], names: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    """The summary: miners, validators and the base's history, as the snapshot has them.

    ``names`` maps hotkeys to wallet names; ``extra`` carries the run's own facts (timings, failures…).
    """
    rows = {row["hotkey"]: {**row, "competition": comp["id"]} for comp in snap["competitions"] for row in comp["rows"]}
    miners = []
    for hotkey, name in names.items():
        if not name.startswith("miner"):
            continue
        row = rows.get(hotkey, {})
        miners.append({"name": name, "uid": row.get("uid"), "hotkey": hotkey, "rank": row.get("rank"),
                       "repo": row.get("repo"), "revision": row.get("revision"), "advantage": row.get("advantage"),
                       "ci_low": row.get("ci_low"), "ci_high": row.get("ci_high"), "days": row.get("days"),
                       "mean_reward": row.get("mean_reward"), "incentive": row.get("incentive"),
                       "emission": row.get("emission")})
    miners.sort(key=lambda m: (m["rank"] is None, m["rank"] or 0, m["name"]))
    validators = [{"name": names.get(v["hotkey"], "?"), "uid": v["uid"], "hotkey": v["hotkey"], "stake": v["stake"],
                   "validator_trust": v["validator_trust"]} for v in snap["validators"]]
    merges = []
    for record in snap["base_history"]:
        gate = record.get("gate") or {}
        merges.append({"round": record.get("round"), "status": record.get("status"), "reason": record.get("reason"),
                       "parent": record.get("parent"), "published": record.get("published"),
                       "inputs": sum(1 for i in record.get("inputs", []) if i.get("decision") == "kept"),
                       "base_reward_before": gate.get("base_reward"), "merged_reward": gate.get("merged_reward"),
                       "best_single_reward": gate.get("best_single_reward"),
                       "base_brier_skill_before": gate.get("base_brier_skill"),
                       "merged_brier_skill": gate.get("merged_brier_skill"),
                       "format_prompts": gate.get("format_prompts") or None,
                       "base_format_failures": gate.get("base_format_failures"),
                       "merged_format_failures": gate.get("merged_format_failures")})
    return {"netuid": snap["netuid"], "block": snap["block"], "workdir": str(s.workdir), **extra,
            "miners": miners, "validators": validators, "merges": merges,
            "base_progress": [p for points in snap.get("base_progress", {}).values() for p in points],
            "forecast": forecast(s, N.averager_rounds(s))}


def forecast(s: Settings, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Brier skill on the fixed benchmark (``cortex.eval.ceiling``): the reference forecasters (constant 0.5,
    training base rate, the analyst teacher, the synthetic market's oracle), genesis and the final base, and
    final − genesis question by question with the day-clustered one-sided interval. None without scores."""
    from cortex.eval.benchmark import load_questions
    from cortex.eval.ceiling import CONFIDENCE, bootstrap_data, brier_skill, references, skill_difference
    from cortex.localnet.setup import base_report, benchmark_file

    scored = [r for r in records if (r.get("benchmark_after") or {}).get("p_up")]
    if not scored or not (scored[0].get("benchmark_before") or {}).get("p_up"):
        return None
    genesis, final = scored[0]["benchmark_before"], scored[-1]["benchmark_after"]
    rows, sha = load_questions(benchmark_file(s))
    if genesis["questions_sha256"] != sha or final["questions_sha256"] != sha:
        return None
    refs = references(rows, bootstrap_data(base_report(s)))
    diff = skill_difference(rows, final["p_up"], genesis["p_up"], CONFIDENCE)
    return {"questions": len(rows), "days": diff.days, "confidence": CONFIDENCE,
            "skill": {**{name: brier_skill(p, rows) for name, p in refs.items()},
                      "genesis": genesis.get("brier_skill"), "final base": final.get("brier_skill")},
            "final_model": final["model"], "final_minus_genesis": {"mean": diff.mean, "low": diff.low, "high": diff.high}}


def write(s: Settings, summary: dict[str, Any], snap: dict[str, Any]) -> Path:
    write_json(s.workdir / "snapshot.json", snap)
    path = s.workdir / "summary.json"
    write_json(path, summary)
    return path


def num(value: float | None, fmt: str) -> str:
    """``value`` formatted, or "-" for a number the run does not have."""
    return "-" if value is None else format(value, fmt)


def render(summary: dict[str, Any], console: Console) -> None:
    miners = Table(title=f"miners (block {summary['block']})", title_justify="left")
    for column in ("rank", "uid", "miner", "hotkey", "revision", "advantage", "interval", "days", "mean reward",
                   "incentive", "emission"):
        miners.add_column(column, justify="right" if column not in ("miner", "hotkey", "revision") else "left")
    for m in summary["miners"]:
        miners.add_row(num(m["rank"], "d"), num(m["uid"], "d"), m["name"], m["hotkey"][:12] + "…",
                       (m["revision"] or "-")[:12], num(m["advantage"], ".3f"),
                       "-" if m["ci_low"] is None else f"[{m['ci_low']:+.3f}, {m['ci_high']:+.3f}]",
                       num(m["days"], "d"), num(m["mean_reward"], "+.3f"),
                       num(m["incentive"], ".4f"), num(m["emission"], ".4f"))
    validators = Table(title="validators", title_justify="left")
    for column in ("uid", "validator", "hotkey", "stake", "validator trust"):
        validators.add_column(column, justify="left" if column in ("validator", "hotkey") else "right")
    for v in summary["validators"]:
        validators.add_row(str(v["uid"]), v["name"], v["hotkey"][:12] + "…", f"{v['stake']:.1f}",
                           f"{v['validator_trust']:.4f}")
    merges = Table(title="base model, before and after each merge (the averager's gate)", title_justify="left")
    for column in ("round", "inputs", "base reward before", "merged reward", "best single", "Brier skill base → merged",
                   "out of format base → merged", "result", "base after"):
        merges.add_column(column, justify="left" if column in ("result", "base after") else "right",
                          max_width=48 if column == "result" else None)
    for g in summary["merges"]:
        after = g["published"] or g["parent"] or "-"
        skill = (f"{num(g.get('base_brier_skill_before'), '+.3f')} → {num(g.get('merged_brier_skill'), '+.3f')}"
                 if g.get("merged_brier_skill") is not None else "-")
        fmt = (f"{g['base_format_failures']} → {g['merged_format_failures']} of {g['format_prompts']}"
               if g.get("format_prompts") else "-")
        merges.add_row(str(g["round"]), str(g["inputs"]), num(g["base_reward_before"], "+.3f"),
                       num(g["merged_reward"], "+.3f"), num(g["best_single_reward"], "+.3f"), skill, fmt,
                       f"{g['status']}: {g['reason']}", after.split("@")[-1][:12])
    console.print(miners)
    console.print(validators)
    if summary["merges"]:
        console.print(merges)
    if summary.get("base_progress"):
        console.print(_progress_table(summary["base_progress"]))
    if summary.get("forecast"):
        console.print(_forecast_table(summary["forecast"]))
    for failure in summary.get("failures", []):
        console.print(f"[red]failed[/]: {failure}")


def _progress_table(points: list[dict[str, Any]]) -> Table:
    """The base on the averager's fixed benchmark (the same questions every round), genesis first."""
    n = points[-1]["questions"]
    table = Table(title=f"base model on the fixed benchmark ({n} held-out questions, the same every round)",
                  title_justify="left")
    for column in ("base", "model", "held-out reward", "parse rate", "Brier", "Brier skill"):
        table.add_column(column, justify="left" if column in ("base", "model") else "right")
    for p in points:
        table.add_row(p["label"] + ("" if p["status"] in ("start", "published") else f" ({p['status']})"),
                      p["model"].split("@")[-1][:12], num(p["mean_reward"], "+.3f"), num(p["parse_rate"], ".2f"),
                      num(p["brier"], ".3f"), num(p.get("brier_skill"), "+.3f"))
    return table


def verdict(f: dict[str, Any]) -> str:
    """The forecasting table's line in words: did the loop make its base a better forecaster?"""
    d = f["final_minus_genesis"]
    if d["low"] > 0:
        return "the final base forecasts better than genesis: the interval is above zero"
    if d["mean"] == 0 and d["low"] == 0:
        return "no merge changed the base's forecasts: final and genesis forecast alike"
    if d["high"] < 0:
        return "the final base forecasts worse than genesis: even the interval's upper bound is below zero"
    return ("no forecasting gain the benchmark can tell from chance: the interval reaches zero "
            "(docs/localnet.md says why the tiny base's adapters do not add skill)")


def _forecast_table(f: dict[str, Any]) -> Table:
    """Brier skill (1 − Brier / 0.25; an unparsed answer counts as 0.5) of the references and the bases."""
    d = f["final_minus_genesis"]
    table = Table(title=f"forecasting skill on the fixed benchmark ({f['questions']} questions, {f['days']} days): "
                        f"final − genesis {d['mean']:+.3f}, one-sided {f['confidence']:.0%} interval "
                        f"[{d['low']:+.3f}, ∞)", title_justify="left", min_width=72)  # title and verdict on a line or two
    table.caption = verdict(f)
    table.caption_justify = "left"
    table.add_column("forecaster")
    table.add_column("Brier skill", justify="right")
    for name, value in f["skill"].items():
        table.add_row(name + (" (the ceiling)" if name == "oracle" else " (the teacher)" if name == "analyst" else ""),
                      num(value, "+.3f"))
    return table
