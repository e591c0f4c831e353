"""Know the ceiling: Brier skill (1 − Brier / 0.25) on the fixed benchmark's questions of the constant 0.5,
the training base rate, the analyst teacher, the synthetic market's oracle, and (with a localnet work
directory) genesis and the final base, with final − genesis as a paired, day-clustered interval.
A report, not an assertion.

    python bench/forecast_ceiling.py --workdir /tmp/demo0            # a finished `cortex localnet` run
    python bench/forecast_ceiling.py --source synthetic:0 --questions 100
    python bench/forecast_ceiling.py --source csv                    # the real candles (CORTEX_MARKET_DATA)
    python bench/forecast_ceiling.py --workdir /tmp/demo0 --moves    # and what the benchmark could see
    python bench/forecast_ceiling.py --workdir /tmp/demo0 --period 2024-02-15:2024-05-15   # another period
    python bench/forecast_ceiling.py --workdir /tmp/demo0 --student miner.yaml --adapter out/adapter  # a student

``--period START:END`` (with ``--workdir``) scores genesis and every base the run published on another period's
questions (``--questions`` of them, evenly spaced, cutoffs START..END), each against genesis with the same
interval: a gain that holds on the benchmark's months and on others is skill the loop added, one that changes
sign with the period is a lean (a base rate) that happened to fit the benchmark's months.

``--moves`` (with ``--workdir``) adds what a merged base would have to do for the benchmark to see it:
genesis' own forecasts moved after the fact (``factor`` times their distance from 0.5, or a share of the
way to the analyst's), each with final − genesis's interval, and the analyst as each round-1 miner fits it
on its own window (``configs/round-1/minerK.yaml``: its assets, ``data_start``..``data_end``): the
forecasts those miners' SFT targets carry, on the benchmark.

``--student CONFIG`` (with ``--workdir``) reads miners' adapters as students of their teacher: genesis and each
``--adapter`` (trained on the run's genesis with that training config) on the benchmark's questions, or on
``--period``'s, beside the analyst as CONFIG fits it (its assets, ``data_start``..``data_end``: the forecasts its
SFT targets carry) and the bootstrap's analyst (four years), each with its Brier skill, − genesis, and how
its ``p_up`` follows CONFIG's analyst (:func:`cortex.eval.ceiling.follows`: correlation, slope, mean, distinct
values). An adapter that learned its teacher's reading raises the correlation and moves the slope towards 1;
one that learned its window's lean moves the mean and the slope while the correlation stays or falls.

Without ``--workdir`` the questions are rebuilt as `cortex base bootstrap` builds them: the dataset's test
split (stride 2), ``--questions`` of them evenly spaced in time. ``csv`` alone reads CORTEX_MARKET_DATA (or
../shared/data/market); without that folder it prints a message and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex.eval.ceiling import (  # noqa: E402
    CONFIDENCE, analyst_fitted_on, benchmark_samples, bootstrap_data, brier_skill, follows, moved, references,
    skill_difference)
from cortex.localnet.summary import num  # noqa: E402
from teacher_baseline import market_dir  # noqa: E402  (bench/ is the script's folder)


def rebuilt_questions(data: dict, n: int) -> list[dict]:
    """The bootstrap's benchmark: its dataset's test split, ``n`` rows evenly spaced (no teacher needed)."""
    from cortex.data import build_samples, split_by_time
    from cortex.data.dataset import load_frames
    from cortex.data.sources import get_source
    from cortex.model.bootstrap import spread

    source = get_source(data["source"], seed=data["seed"])
    frames = load_frames(source, data["assets"], data["start"], data["end"])
    samples = build_samples(frames, data["assets"], data["horizons"], data["start"], data["end"],
                            stride=data["stride"], source=source.name, synthetic=source.is_synthetic)
    splits, _ = split_by_time(samples)
    return spread([s.row() for s in splits["test"]], n)


def period_questions(data: dict, start: str, end: str, n: int) -> list[dict]:
    """``n`` resolved questions (evenly spaced, every ``stride``-th day as the benchmark's) with cutoffs
    ``start``..``end`` from the run's source."""
    from cortex.data import build_samples
    from cortex.data.dataset import load_frames
    from cortex.data.sources import get_source
    from cortex.model.bootstrap import spread

    source = get_source(data["source"], seed=data["seed"])
    frames = load_frames(source, data["assets"], None, None)
    samples = build_samples(frames, data["assets"], data["horizons"], start, end, stride=data.get("stride", 1),
                            source=source.name, synthetic=source.is_synthetic)
    rows = [s.row() for s in sorted(samples, key=lambda s: (s.cutoff, s.asset, s.horizon_days)) if s.known]
    if not rows:
        raise SystemExit(f"forecast_ceiling: no resolved questions with cutoffs {start}..{end} in {data['source']}")
    return spread(rows, n)


def published_bases(workdir: Path) -> list[tuple[str, str]]:
    """(label, repo@revision) of genesis and of every base the run's averager published, in order."""
    from cortex.leaderboard.files import averager_rounds

    rounds = [r for r in averager_rounds([workdir]) if r.get("parent")]
    if not rounds:
        return []
    return [("genesis", rounds[0]["parent"])] + [(f"r{r['round']}", r["published"]) for r in rounds if r.get("published")]


def score_bases(workdir: Path, rows: list[dict], bases: list[tuple[str, str]]) -> dict[str, list]:
    """Each base's ``p_up`` on ``rows``, scored with the validators' code (``cortex.eval.benchmark``)."""
    import tempfile

    from cortex.eval.benchmark import Benchmark, write_questions
    from cortex.hub.local import LocalStore
    from cortex.model.loading import fetch_base
    from cortex.protocol.competition import find_competition

    store = LocalStore(workdir / "store")
    comp = find_competition(str(workdir / "competition.yaml"), None)
    out = {}
    with tempfile.TemporaryDirectory(prefix="cortex-period-") as tmp:
        bench = Benchmark(write_questions(rows, Path(tmp) / "questions.jsonl"), Path(tmp) / "scores", comp, "cpu")
        for label, ref in bases:
            repo, revision = ref.split("@")
            folder = fetch_base(repo, revision, store, cache_dir=Path(tmp) / "bases")
            out[f"{label} ({revision[:12]})"] = bench.score(ref, folder).p_up
    return out


def last_day(workdir: Path) -> str | None:
    """The newest market day the run's clock closed (its miners and gate saw outcomes up to it)."""
    from datetime import date

    from cortex.eval.evalset import SimulatedClock

    try:
        settings = json.loads((workdir / "localnet.json").read_text())["settings"]
        block = json.loads((workdir / "summary.json").read_text())["block"]
        clock = SimulatedClock(date.fromisoformat(settings["start_day"]), int(settings["blocks_per_day"]))
        return clock.day(int(block)).isoformat()
    except (OSError, KeyError, ValueError, TypeError):
        return None


def localnet_bases(workdir: Path) -> tuple[list[dict], dict | None, dict | None]:
    """(questions, genesis score, final score) of a finished localnet run."""
    from cortex.eval.benchmark import load_questions
    from cortex.leaderboard.files import averager_rounds

    rows, sha = load_questions(workdir / "base" / "heldout.jsonl")
    scored = [r for r in averager_rounds([workdir]) if (r.get("benchmark_after") or {}).get("questions_sha256") == sha]
    if not scored:
        return rows, None, None
    return rows, scored[0].get("benchmark_before"), scored[-1].get("benchmark_after")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="a finished `cortex localnet` work directory")
    parser.add_argument("--source", default="synthetic:0", help="synthetic[:SEED] or csv[:DIR] (without --workdir)")
    parser.add_argument("--questions", type=int, default=100, help="benchmark size (without --workdir)")
    parser.add_argument("--json", type=Path, help="also write the table here")
    parser.add_argument("--period", help="with --workdir: START:END (ISO days): genesis and every published base "
                        "on questions with cutoffs in that period instead of the benchmark's")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for --period's and --student's scoring")
    parser.add_argument("--student", type=Path, help="with --workdir: a miner's training config; genesis and each "
                        "--adapter against the analyst that config fits (its SFT targets' forecasts)")
    parser.add_argument("--adapter", type=Path, action="append", default=[],
                        help="with --student: an adapter trained on the run's genesis (repeat for several)")
    parser.add_argument("--moves", action="store_true", help="with --workdir: genesis moved after the fact, and "
                        "the analyst as each round-1 miner fits it")
    args = parser.parse_args()
    if (args.moves or args.period or args.student) and not args.workdir:
        parser.error("--moves, --period and --student need --workdir (a finished `cortex localnet` run)")
    if args.period and (args.moves or ":" not in args.period):
        parser.error("--period takes START:END (ISO days), and not with --moves")
    if args.adapter and not args.student:
        parser.error("--adapter needs --student (the training config the adapter was trained with)")
    for path in ([args.student] if args.student else []) + args.adapter:
        if not path.exists():
            parser.error(f"{path} does not exist")
    t0 = time.time()
    genesis = final = None
    if args.workdir:
        report = json.loads((args.workdir / "base" / "bootstrap.json").read_text())
        data = bootstrap_data(report)
        if args.student:
            return student_report(args, data)
        if args.period:
            return period_report(args, data)
        rows, genesis, final = localnet_bases(args.workdir)
    else:
        source = args.source
        if source == "csv":
            directory = market_dir()
            if directory is None:
                print("forecast_ceiling: no real market data (set CORTEX_MARKET_DATA); skipped")
                return 0
            source = f"csv:{directory}"
        seed = int(source.split(":")[1]) if source.startswith("synthetic:") else 0
        data = {"source": source, "seed": seed, "stride": 2, "start": None, "end": None,
                "assets": ["BTC", "ETH", "SOL", "NEAR"], "horizons": [1, 7]}
        rows = rebuilt_questions(data, args.questions)
    forecasts = references(rows, data)
    for name, score in (("genesis", genesis), ("final base", final)):
        if score and score.get("p_up"):
            forecasts[f"{name} ({score['model'].split('@')[-1][:12]})"] = score["p_up"]
    horizons = sorted({int(r["horizon_days"]) for r in rows})
    days = sorted({str(r["cutoff"])[:10] for r in rows})
    label = data["source"] if not data["source"].startswith("csv:") else "csv (real candles)"
    print(f"{label}: {len(rows)} benchmark questions, cutoffs {days[0]}..{days[-1]} ({len(days)} days); "
          f"Brier skill = 1 - Brier / 0.25 (an unparsed answer counts as 0.5)")
    head = f"{'forecaster':<28} {'all':>7} " + " ".join(f"{f'{h}d':>7}" for h in horizons) + "   vs constant 0.5 (one-sided 95%)"
    print(head)
    table = []
    for name, p in forecasts.items():
        by_h = {h: brier_skill([q for q, r in zip(p, rows) if int(r["horizon_days"]) == h],
                               [r for r in rows if int(r["horizon_days"]) == h]) for h in horizons}
        iv = skill_difference(rows, p, forecasts["constant 0.5"], CONFIDENCE)
        table.append({"forecaster": name, "skill": brier_skill(p, rows), "by_horizon": by_h,
                      "vs_coin": {"mean": iv.mean, "low": iv.low, "high": iv.high, "days": iv.days}})
        print(f"{name:<28} {table[-1]['skill']:>+7.3f} " + " ".join(f"{by_h[h]:>+7.3f}" for h in horizons)
              + (f"   {iv.mean:+.3f} [{iv.low:+.3f}, ∞)" if name != "constant 0.5" else ""))
    if genesis and final and genesis.get("p_up") and final.get("p_up"):
        iv = skill_difference(rows, final["p_up"], genesis["p_up"], CONFIDENCE)
        print(f"final − genesis: {iv.mean:+.4f}, one-sided {CONFIDENCE:.0%} interval [{iv.low:+.4f}, ∞) "
              f"over {iv.days} days (day-clustered)")
        table.append({"forecaster": "final - genesis", "mean": iv.mean, "low": iv.low, "high": iv.high})
    if args.moves and genesis and genesis.get("p_up"):
        table += moves_report(rows, data, genesis["p_up"], forecasts["analyst"], args.workdir)
    print(f"({time.time() - t0:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps({"source": label, "questions": len(rows), "table": table}, indent=1) + "\n")
    return 0


def period_report(args: argparse.Namespace, data: dict) -> int:
    """``--period``: the references, genesis and every published base on another period's questions."""
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    start, end = args.period.split(":", 1)
    rows = period_questions(data, start, end, args.questions)
    seen = last_day(args.workdir)
    days = sorted({str(r["cutoff"])[:10] for r in rows})
    print(f"{data['source']}: {len(rows)} questions, cutoffs {days[0]}..{days[-1]} ({len(days)} days); Brier skill "
          f"= 1 - Brier / 0.25 (an unparsed answer counts as 0.5)")
    if seen and days[0] <= seen:
        print(f"note: the run's clock closed market days up to {seen}: its miners and its gate saw outcomes of this "
              f"period, so it is not held out from the run")
    forecasts = references(rows, data)
    bases = score_bases(args.workdir, rows, published_bases(args.workdir))
    genesis = next((p for name, p in bases.items() if name.startswith("genesis")), None)
    table = []
    for name, p in {**forecasts, **bases}.items():
        line = {"forecaster": name, "skill": brier_skill(p, rows)}
        tail = ""
        if genesis is not None and name in bases and p is not genesis:
            iv = skill_difference(rows, p, genesis, CONFIDENCE)
            line.update(mean=iv.mean, low=iv.low)
            tail = f"   − genesis {iv.mean:+.4f} [{iv.low:+.4f}, ∞)"
        table.append(line)
        print(f"{name:<28} {line['skill']:>+7.3f}{tail}")
    print(f"({time.time() - t0:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps({"source": data["source"], "period": args.period, "questions": len(rows),
                                         "table": table}, indent=1) + "\n")
    return 0


def score_adapters(workdir: Path, rows: list[dict], adapters: list[Path], threads: int) -> dict[str, list]:
    """``p_up`` of the run's genesis (``workdir/base``) and of genesis with each adapter on ``rows``, as
    validators generate and parse (``cortex.eval.generate``; the run's competition's token budget)."""
    import torch

    from cortex.eval.ceiling import forecasts
    from cortex.eval.generate import Generator, evaluate
    from cortex.protocol.competition import find_competition

    torch.set_num_threads(threads)
    comp = find_competition(str(workdir / "competition.yaml"), None)
    generator = Generator.load(workdir / "base", device="cpu", max_new_tokens=comp.eval.max_new_tokens,
                               batch_size=comp.eval.batch_size)
    out = {}
    for adapter in [None, *adapters]:
        name = "genesis" if adapter is None else str(adapter)
        result = evaluate(generator, rows, key=name, adapter=adapter, config=comp.reward)
        if result.rewards is None:  # an adapter the base cannot load, or over the time budget: said, not scored
            print(f"{name}: not scored: {result.reason}")
            continue
        out[name] = forecasts(result.parts)
    return out


def student_report(args: argparse.Namespace, data: dict) -> int:
    """``--student``: genesis and each adapter against the analyst the training config fits."""
    import yaml

    from cortex.eval.benchmark import load_questions

    t0 = time.time()
    cfg = yaml.safe_load(args.student.read_text()) or {}
    if args.period:
        start, end = args.period.split(":", 1)
        rows = period_questions(data, start, end, args.questions)
    else:
        rows, _ = load_questions(args.workdir / "base" / "heldout.jsonl")
    scored = score_adapters(args.workdir, rows, args.adapter, args.threads)
    table = student_table(rows, data, cfg, scored)
    if args.json:
        args.json.write_text(json.dumps({"source": data["source"], "period": args.period, "questions": len(rows),
                                         "student": str(args.student), "table": table}, indent=1) + "\n")
    print(f"({time.time() - t0:.1f} s)")
    return 0


def student_table(rows: list[dict], data: dict, cfg: dict, scored: dict[str, list]) -> list[dict]:
    """The ``--student`` table from forecasts already made (``scored``: genesis first); printed and returned."""
    questions = benchmark_samples(rows, data)
    teacher = analyst_fitted_on(questions, data, cfg.get("assets") or data.get("assets"), cfg.get("data_start"),
                                cfg.get("data_end"), cfg.get("horizons") or (1, 7))
    days = sorted({str(r["cutoff"])[:10] for r in rows})
    print(f"{data['source']}: {len(rows)} questions, cutoffs {days[0]}..{days[-1]} ({len(days)} days); the teacher: "
          f"{cfg.get('teacher', 'analyst')} fitted on {','.join(cfg.get('assets') or data.get('assets') or [])} "
          f"{cfg.get('data_start')}..{cfg.get('data_end')}")
    print(f"{'forecaster':<36} {'skill':>7}   {'− genesis (one-sided 95%)':<26} {'corr':>5} {'slope':>6} {'mean':>6} "
          f"{'values':>6}")
    genesis = scored.get("genesis")
    bootstrap = analyst_fitted_on(questions, data, data.get("assets"), data.get("start"), data.get("end"),
                                  data.get("horizons") or (1, 7))  # the references' analyst, on the same questions
    lines = [("the teacher (its analyst)", teacher), ("the bootstrap's analyst", bootstrap)]
    table = []
    for name, p in lines + list(scored.items()):
        line = {"forecaster": name, "skill": brier_skill(p, rows), **follows(p, teacher)}
        gain = ""
        if genesis is not None and p is not genesis:
            iv = skill_difference(rows, p, genesis, CONFIDENCE)
            line.update(gain=iv.mean, low=iv.low)
            gain = f"{iv.mean:+.3f} [{iv.low:+.3f}, ∞)"
        table.append(line)
        print(f"{name[-36:]:<36} {line['skill']:>+7.3f}   {gain:<26} {num(line['corr'], '5.2f'):>5} "
              f"{num(line['slope'], '6.2f'):>6} {line['mean']:>6.3f} {line['values']:>6}")
    return table


def moves_report(rows: list[dict], data: dict, genesis: list, analyst: list[float], workdir: Path) -> list[dict]:
    """Genesis moved after the fact, and the analyst as each round-1 miner fits it; printed and returned."""
    import yaml

    out = []
    print(f"\ngenesis moved after the fact, on the same questions: Brier skill, − genesis (one-sided {CONFIDENCE:.0%})")
    for name, p in ([(f"x{k:g} from 0.5", moved(genesis, k)) for k in (1.25, 1.5, 2.0)]
                    + [(f"{a:.0%} of the way to the analyst", moved(genesis, toward=analyst, share=a))
                       for a in (0.1, 0.25, 0.5)]):
        iv = skill_difference(rows, p, genesis, CONFIDENCE)
        out.append({"forecaster": f"genesis {name}", "skill": brier_skill(p, rows), "mean": iv.mean, "low": iv.low})
        print(f"  {name:<30} {out[-1]['skill']:>+7.3f}   {iv.mean:+.3f} [{iv.low:+.3f}, ∞)")
    configs = sorted((workdir / "configs" / "round-1").glob("miner*.yaml"))
    questions = benchmark_samples(rows, data) if configs else []
    if configs:
        print("the analyst as each round-1 miner fits it (its SFT targets' forecasts), on the same questions:")
    for path in configs:
        cfg = yaml.safe_load(path.read_text()) or {}
        p = analyst_fitted_on(questions, data, cfg.get("assets") or data.get("assets"), cfg.get("data_start"),
                              cfg.get("data_end"), cfg.get("horizons") or (1, 7))
        out.append({"forecaster": f"{path.stem}'s analyst", "skill": brier_skill(p, rows),
                    "window": [cfg.get("data_start"), cfg.get("data_end")], "assets": cfg.get("assets")})
        print(f"  {path.stem:<8} {','.join(cfg.get('assets') or []):<16} {cfg.get('data_start')}..{cfg.get('data_end')}"
              f"  {out[-1]['skill']:>+7.3f}  (teacher {cfg.get('teacher', 'analyst')})")
    return out


if __name__ == "__main__":
    sys.exit(main())
