"""The ``calibrate`` stage: teach the adapter to state its own forecasts with the confidence they have earned.

A model can rank the market's days well and still say too little about them: the tiny genesis base reads
the market as the analyst does at 0.3 of the analyst's confidence (docs/base-model.md), and its Brier
skill on the fixed benchmark rises from +0.19 to +0.29 (seed 0) when its own ``p_up`` is only moved
further from 0.5. That is the gap this stage closes, from data the miner may use:

1. the model (the base with the adapter trained so far) answers ``calibrate_samples`` questions of the
   *training* split, greedily, as validators ask them (``cortex.eval``);
2. one sharpening factor ``s`` is fitted to those answers' known outcomes, pooled over the horizons: the
   ``p_up`` that minimises the Brier score among ``0.5 + s·(p − 0.5)`` (closed form: the Brier score is
   quadratic in ``s``), kept in ``[MIN_SHARPENING, MAX_SHARPENING]``; with too few parsed answers ``s = 1``.
   One factor, not one per horizon: fitted on 48 answers per horizon the factors were noise (seed 2 of
   docs/localnet.md: 4.0 and 0.5, both bounds), where a model pre-trained at one strength is as unsure at
   every horizon; the report still gives each horizon's Brier skill before and after;
3. the model's own answers, with ``p_up`` moved by ``s`` (the side never changes, so the
   reasoning still agrees with it), are SFT targets for ``calibrate_steps`` more steps of the same adapter,
   the loss on the answer alone (from ``</think>``; the reasoning is the model's own and stays as it is).

The targets are the model's own answer, so the loss is small everywhere but at the forecast's digits: the
gradient goes to what should change and the format stays as it was (a teacher's traces, by contrast,
differ from what the model writes in many places: docs/localnet.md). This is Platt-style recalibration
(Platt, 1999) with one slope and no intercept, chosen so that no forecast changes side; it is a few lines
of arithmetic, so it is written here rather than taken from a library. The fit and its numbers go to
``metrics.json`` under ``stages.calibrate``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from cortex.errors import CortexError
from cortex.eval.ceiling import P_RANGE, sharpen  # noqa: F401  (P_RANGE: the bounds sharpen keeps to)
from cortex.protocol.competition import Competition
from miner.config import TrainConfig
from miner.training import StageResult

log = logging.getLogger(__name__)
MIN_ROWS = 12  # parsed answers a horizon needs before its factor is fitted (below: s = 1)
MIN_SHARPENING, MAX_SHARPENING = 0.5, 3.0


def sharpening(p_up: Sequence[float], went_up: Sequence[bool], lo: float = MIN_SHARPENING,
               hi: float = MAX_SHARPENING) -> float:
    """The ``s`` in ``[lo, hi]`` that minimises the Brier score of ``0.5 + s·(p − 0.5)`` (1 when ``p`` is all 0.5).

    With ``d = p − 0.5`` and ``e = y − 0.5`` the Brier score is ``Σ (s·d − e)²``, least at ``s = Σ d·e / Σ d²``.
    """
    if len(p_up) != len(went_up):
        raise ValueError("one outcome per forecast")
    d = [float(p) - 0.5 for p in p_up]
    e = [0.5 if up else -0.5 for up in went_up]
    dd = sum(x * x for x in d)
    if dd <= 1e-12:
        return 1.0
    return min(hi, max(lo, sum(x * y for x, y in zip(d, e)) / dd))


def fit(parts: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
        max_sharpening: float = MAX_SHARPENING) -> dict[str, Any]:
    """The factor fitted on every parsed answer (at most ``max_sharpening``), how many it saw, and per horizon the
    Brier skill before and after on that horizon's answers."""
    from cortex.eval.ceiling import brier_skill, forecasts, went_up

    p = forecasts(parts)
    idx = [i for i, x in enumerate(p) if x is not None]
    if len(idx) < MIN_ROWS:
        return {"sharpening": 1.0, "answers": len(idx), "reason": f"fewer than {MIN_ROWS} parsed answers",
                "horizons": {}}
    s = sharpening([p[i] for i in idx], [went_up(rows[i]) for i in idx], hi=max_sharpening)
    horizons = {}
    for h in sorted({int(rows[i]["horizon_days"]) for i in idx}):
        sub = [i for i in idx if int(rows[i]["horizon_days"]) == h]
        ps, hr = [p[i] for i in sub], [rows[i] for i in sub]
        horizons[str(h)] = {"answers": len(sub), "brier_skill_before": round(brier_skill(ps, hr), 4),
                            "brier_skill_after": round(brier_skill([sharpen(x, s) for x in ps], hr), 4)}
    return {"sharpening": round(s, 4), "answers": len(idx), "horizons": horizons}


def target(p_up: float, s: float, teacher: float | None = None, share: float = 0.0) -> float:
    """The forecast an answer is trained to state: ``p_up`` sharpened by ``s``, then ``share`` of the way to the
    teacher's ``p_up`` where the teacher is on the same side (elsewhere the sharpened forecast alone: the
    reasoning the answer follows from stays in agreement with it)."""
    p = sharpen(p_up, s)
    if teacher is None or share <= 0 or (float(teacher) >= 0.5) != (float(p_up) >= 0.5):
        return p
    return p + share * (float(teacher) - p)


def teacher_p_up(row: Mapping[str, Any], competition: Competition) -> float | None:
    """The teacher's ``p_up`` in a dataset row's assistant message (None when the row has none that parses)."""
    from cortex.reward.parse import parse_completion

    messages = row.get("messages") or []
    if not messages or messages[-1].get("role") != "assistant":
        return None
    parsed = parse_completion(messages[-1].get("content"), row["asset"], int(row["horizon_days"]), competition.reward)
    return None if parsed.error is not None or parsed.answer is None else float(parsed.answer["p_up"])


def rewrite(completion: str, row: Mapping[str, Any], s: float, competition: Competition,
            teacher: float | None = None, share: float = 0.0) -> str | None:
    """``completion`` with its answer's ``p_up`` moved to :func:`target` (None when it does not parse)."""
    from cortex.data import prompts as P
    from cortex.reward.parse import parse_completion

    parsed = parse_completion(completion, row["asset"], int(row["horizon_days"]), competition.reward)
    if parsed.error is not None or parsed.answer is None:
        return None
    a = parsed.answer
    return P.completion(parsed.reasoning, P.format_answer(a["asset"], int(a["horizon_days"]),
                                                         target(a["p_up"], s, teacher, share), a["return_pct"]))


def calibration_rows(cfg: TrainConfig, base: Path, adapter: Path | None, rows: Sequence[Mapping[str, Any]],
                     competition: Competition) -> tuple[list[dict], dict[str, Any]]:
    """(SFT rows with ``messages``, the fit's report): the model's answers to ``rows``, each ``p_up`` sharpened."""
    from cortex.eval.generate import Generator, evaluate

    generator = Generator.load(base, device=cfg.heldout_device,
                               max_new_tokens=cfg.heldout_max_new_tokens or competition.eval.max_new_tokens,
                               batch_size=competition.eval.batch_size)
    result = evaluate(generator, rows, key="calibrate", adapter=adapter, config=competition.reward)
    del generator
    if result.completions is None:
        raise CortexError(f"calibrate: the model could not answer its training questions ({result.reason})")
    fitted = fit(result.parts, rows, cfg.calibrate_max_sharpening)
    from cortex.eval.ceiling import forecasts

    s, share = fitted["sharpening"], cfg.calibrate_toward_teacher
    out, toward = [], 0
    for completion, row, own in zip(result.completions, rows, forecasts(result.parts)):
        teacher = teacher_p_up(row, competition) if share > 0 else None
        text = rewrite(completion, row, s, competition, teacher, share)
        if text is not None:
            out.append({"messages": [*row["prompt"], {"role": "assistant", "content": text}]})
            toward += own is not None and target(own, s, teacher, share) != sharpen(own, s)
    report = {**fitted, "questions": len(rows), "parse_rate": round(result.parse_rate, 4), "rows": len(out),
              "toward_teacher": {"share": share, "rows": toward}, "generate_seconds": round(result.seconds, 1)}
    log.info("calibrate: %d of %d answers parse; sharpening x%.2f (Brier skill on them %s)", len(out), len(rows),
             fitted["sharpening"], ", ".join(f"{h} d {v['brier_skill_before']:+.3f} -> {v['brier_skill_after']:+.3f}"
                                             for h, v in fitted["horizons"].items()))
    return out, report


def train_calibrate(cfg: TrainConfig, base: Path, rows: Sequence[Mapping[str, Any]], competition: Competition,
                    out: Path, *, targets: list[str], adapter: Path | None = None, report_to: str = "none",
                    resume: bool = False) -> StageResult:
    """The stage on ``rows`` (``miner.data.calibration_questions``): answer, fit, and train ``calibrate_steps``
    steps on the sharpened answers (continuing ``adapter``)."""
    import datasets

    from miner.sft import train_sft

    if not rows:
        raise CortexError("calibrate: the training split has no question with a known outcome; use more data")
    sft_rows, report = calibration_rows(cfg, base, adapter, rows, competition)
    if not sft_rows:
        raise CortexError("calibrate: none of the model's answers to its training questions parses; "
                          "train the format first (stage: [sft, calibrate])")
    steps = cfg.calibrate_steps
    stage_cfg = dataclasses.replace(cfg, max_steps=steps, eval_steps=steps, save_steps=steps,
                                    learning_rate=cfg.calibrate_learning_rate or cfg.learning_rate,
                                    logging_steps=max(1, min(cfg.logging_steps, steps)), early_stopping_patience=None)
    result = train_sft(stage_cfg, base, datasets.Dataset.from_list(sft_rows), None, out, targets=targets,
                       adapter=adapter, report_to=report_to, resume=resume, stage="calibrate",
                       answer_only=cfg.calibrate_answer_only)
    return StageResult("calibrate", result.log_history, {**result.summary, **report})
