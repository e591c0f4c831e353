"""The calibrate stage (miner/calibrate.py): the sharpening fit, the rewritten answers, the answer-only loss, and
the stage end to end on a small base whose "own answers" are given (the tiny test base cannot write the format)."""

from __future__ import annotations

import json
import random

import pytest

from cortex.data import prompts as P
from cortex.errors import CortexError
from cortex.eval.generate import ModelScore, score_completions
from cortex.protocol.competition import CORTEX_TINY
from cortex.reward.parse import parse_completion
from miner import calibrate as K
from miner.config import ConfigError, from_dict


def world(n: int, strength: float, seed: int = 0) -> tuple[list[float], list[bool]]:
    """Forecasts that know the truth but state only ``strength`` of it: the outcome is up with probability ``q``,
    the forecast is ``0.5 + strength · (q − 0.5)``."""
    rng = random.Random(seed)
    qs = [rng.uniform(0.15, 0.85) for _ in range(n)]
    return [0.5 + strength * (q - 0.5) for q in qs], [rng.random() < q for q in qs]


def brier(p, ups) -> float:
    return sum((x - u) ** 2 for x, u in zip(p, ups)) / len(p)


def test_the_fit_undoes_a_forecaster_that_says_a_third_of_what_it_knows():
    p, ups = world(4000, 1 / 3)
    s = K.sharpening(p, ups)
    assert 2.4 < s < 3.6  # the truth is 3x the stated distance from 0.5
    assert brier([K.sharpen(x, s) for x in p], ups) < brier(p, ups)
    over, ups2 = world(4000, 2.0)  # an overconfident one is damped
    assert 0.5 <= K.sharpening(over, ups2) < 0.65


def test_a_forecaster_without_skill_is_not_sharpened_and_the_factor_stays_in_bounds():
    rng = random.Random(1)
    p = [rng.uniform(0.3, 0.7) for _ in range(2000)]
    ups = [rng.random() < 0.5 for _ in p]
    assert K.sharpening(p, ups) == K.MIN_SHARPENING  # noise: pulled to 0.5 as far as the bound allows
    assert K.sharpening([0.5] * 10, [True] * 10) == 1.0  # nothing to scale
    assert K.sharpening([0.6] * 10, [True] * 10) == K.MAX_SHARPENING
    with pytest.raises(ValueError):
        K.sharpening([0.6], [True, False])


def test_sharpening_never_changes_a_forecasts_side_and_never_reaches_certainty():
    for p in (0.01, 0.2, 0.49, 0.5, 0.51, 0.8, 0.99):
        for s in (0.5, 1.0, 2.5, 4.0):
            q = K.sharpen(p, s)
            assert K.P_RANGE[0] <= q <= K.P_RANGE[1]
            assert (q > 0.5) == (p > 0.5) and (q < 0.5) == (p < 0.5)


def row(asset: str, h: int, up: bool) -> dict:
    return {"asset": asset, "horizon_days": h, "cutoff": "2024-01-01", "outcome_return": 0.02 if up else -0.02,
            "outcome_direction": "up" if up else "down", "realized_vol": 0.03,
            "prompt": [{"role": "user", "content": f"{asset} over {h} days?"}]}


def answer(r: dict, p_up: float) -> str:
    return P.completion("Momentum is up and volume agrees.", P.format_answer(r["asset"], r["horizon_days"], p_up, 1.5))


def test_the_rewritten_answer_keeps_the_reasoning_and_the_return_and_moves_only_p_up():
    r = row("BTC", 7, True)
    text = K.rewrite(answer(r, 0.6), r, 2.0, CORTEX_TINY)
    parsed = parse_completion(text, "BTC", 7, CORTEX_TINY.reward)
    assert parsed.error is None and parsed.answer["p_up"] == 0.7 and parsed.answer["return_pct"] == 1.5
    assert parsed.answer["direction"] == "up" and parsed.reasoning == "Momentum is up and volume agrees."
    assert K.rewrite("no answer here", r, 2.0, CORTEX_TINY) is None


def test_one_factor_is_fitted_over_every_horizon_and_each_horizon_is_reported():
    p, ups = world(80, 0.4, seed=2)
    rows = [row("ETH", 1 if i % 2 else 7, u) for i, u in enumerate(ups)]
    texts = [answer(r, x) for r, x in zip(rows, p)]
    _, parts = score_completions(texts, rows, CORTEX_TINY.reward)
    fitted = K.fit(parts, rows)
    assert fitted["sharpening"] == round(K.sharpening([round(x, 2) for x in p], ups), 4)  # answers state 2 decimals
    assert fitted["sharpening"] > 1.5
    assert fitted["answers"] == 80 and set(fitted["horizons"]) == {"1", "7"}
    assert all(h["answers"] == 40 for h in fitted["horizons"].values())
    assert sum(h["brier_skill_after"] - h["brier_skill_before"] for h in fitted["horizons"].values()) > 0
    few = K.fit(parts[: K.MIN_ROWS - 1], rows[: K.MIN_ROWS - 1])
    assert few["sharpening"] == 1.0 and "fewer than" in few["reason"]
    capped = K.fit(parts, rows, max_sharpening=1.5)  # a smaller step per round (the demo's miners)
    assert capped["sharpening"] == 1.5
    skill = {k: sum(h[k] for h in f["horizons"].values()) for f, k in ((fitted, "brier_skill_before"),
                                                                      (capped, "brier_skill_after"))}
    assert skill["brier_skill_before"] < skill["brier_skill_after"] < sum(
        h["brier_skill_after"] for h in fitted["horizons"].values()) + 1e-3  # part of the way (the score is quadratic in s)


def test_the_calibrate_loss_covers_the_answer_only():
    from cortex.model.random_base import FAMILIES, build_tokenizer
    from miner.sft import answer_start, completion_weights

    text = answer(row("BTC", 1, True), 0.6)
    assert text[answer_start(text):].startswith("</think><answer>")
    tok = build_tokenizer(FAMILIES["llama3"], "", [text] * 4, vocab_size=300)
    ids, mask = completion_weights(tok, text, 0, answer_only=True)
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert "Momentum" not in trained and '"p_up": 0.6' in trained and trained.endswith("</answer>")
    assert sum(completion_weights(tok, text, 0)[1]) == len(ids)  # the other stages: the whole completion


@pytest.mark.parametrize("stage, problem", [(["calibrate", "sft"], "sft comes first"),
                                            (["sft", "calibrate", "grpo"], "calibrate comes last")])
def test_calibrate_comes_last(stage, problem):
    with pytest.raises(ConfigError, match=problem):
        from_dict({"stage": stage})


def test_calibrate_settings_are_checked():
    assert from_dict({"stage": ["sft", "calibrate"]}).stage == ("sft", "calibrate")
    with pytest.raises(ConfigError, match="calibrate_steps.*calibrate_learning_rate|calibrate_learning_rate"):
        from_dict({"stage": ["calibrate"], "calibrate_steps": 0, "calibrate_learning_rate": -1})
    assert from_dict({"calibrate_max_sharpening": 1.5}).calibrate_max_sharpening == 1.5
    for bad in (0.9, 3.5):
        with pytest.raises(ConfigError, match="calibrate_max_sharpening: expected a number from 1 to 3"):
            from_dict({"stage": ["calibrate"], "calibrate_max_sharpening": bad})


def test_calibration_rows_are_the_models_answers_sharpened(monkeypatch, tmp_path):
    """``calibration_rows`` with the model's generation replaced by known answers: the SFT rows it returns."""
    import cortex.eval.generate as G

    p, ups = world(40, 0.4, seed=3)
    rows = [row("SOL", 1, u) for u in ups]
    texts = [answer(r, x) for r, x in zip(rows, p)]
    texts[0] = "I am not sure."  # one that does not parse: left out
    monkeypatch.setattr(G.Generator, "load", classmethod(lambda cls, *a, **k: object()))
    monkeypatch.setattr(G, "evaluate", lambda gen, rs, **k: ModelScore("calibrate", *score_completions(texts, rs, k["config"])[:1],
                                                                      completions=texts,
                                                                      parts=score_completions(texts, rs, k["config"])[1]))
    from miner.config import TrainConfig

    sft, report = K.calibration_rows(TrainConfig(), tmp_path, None, rows, CORTEX_TINY)
    assert len(sft) == 39 and report["rows"] == 39 and report["questions"] == 40 and report["answers"] == 39
    s = report["sharpening"]
    first = json.loads(sft[0]["messages"][-1]["content"].split("<answer>")[1].split("</answer>")[0])
    assert first["p_up"] == round(K.sharpen(p[1], s), 2) and sft[0]["messages"][:-1] == rows[1]["prompt"]
    assert report["sharpening"] == K.fit(score_completions(texts, rows, CORTEX_TINY.reward)[1], rows)["sharpening"]


def test_a_model_that_cannot_answer_stops_the_stage_with_one_line(monkeypatch, tmp_path):
    import cortex.eval.generate as G
    from miner.config import TrainConfig

    monkeypatch.setattr(G.Generator, "load", classmethod(lambda cls, *a, **k: object()))
    monkeypatch.setattr(G, "evaluate", lambda gen, rs, **k: ModelScore("calibrate", None, reason="out of memory"))
    with pytest.raises(CortexError, match="could not answer its training questions.*out of memory"):
        K.calibration_rows(TrainConfig(), tmp_path, None, [row("BTC", 1, True)], CORTEX_TINY)


def test_the_stage_answers_training_questions_with_known_outcomes_spread_over_the_window():
    import datasets

    from miner.config import TrainConfig
    from miner.data import calibration_questions

    rows = [row("BTC", 1, i % 2 == 0) for i in range(10)]
    rows[4]["outcome_return"] = None  # not resolved yet: nothing to fit on
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)})
    assert len(calibration_questions(dd, TrainConfig(calibrate_samples=100))) == 9
    picked = calibration_questions(dd, TrainConfig(calibrate_samples=5))
    assert len(picked) == 4 and all(r["outcome_return"] is not None for r in picked)


def test_the_configs_cap_bounds_the_factor_the_rows_are_sharpened_by(monkeypatch, tmp_path):
    """``calibrate_max_sharpening``: a forecaster that says a third of what it knows is sharpened at most that much."""
    import cortex.eval.generate as G
    from miner.config import TrainConfig

    p, ups = world(120, 1 / 3, seed=5)
    rows = [row("BTC", 7, u) for u in ups]
    texts = [answer(r, x) for r, x in zip(rows, p)]
    monkeypatch.setattr(G.Generator, "load", classmethod(lambda cls, *a, **k: object()))
    monkeypatch.setattr(G, "evaluate", lambda gen, rs, **k: ModelScore("calibrate", *score_completions(texts, rs, k["config"])[:1],
                                                                      completions=texts,
                                                                      parts=score_completions(texts, rs, k["config"])[1]))
    _, free = K.calibration_rows(TrainConfig(), tmp_path, None, rows, CORTEX_TINY)
    sft, capped = K.calibration_rows(TrainConfig(calibrate_max_sharpening=1.5), tmp_path, None, rows, CORTEX_TINY)
    assert free["sharpening"] > 2 and capped["sharpening"] == 1.5
    first = json.loads(sft[0]["messages"][-1]["content"].split("<answer>")[1].split("</answer>")[0])
    assert first["p_up"] == round(K.sharpen(round(p[0], 2), 1.5), 2)


def test_toward_the_teacher_moves_a_share_of_the_way_only_where_the_teacher_agrees_on_the_side():
    assert K.target(0.6, 1.0, 0.9, 0.5) == pytest.approx(0.75)  # halfway to the teacher
    assert K.target(0.6, 1.5, 0.9, 0.5) == pytest.approx(0.775)  # sharpened to 0.65 first
    assert K.target(0.6, 1.0, 0.3, 0.5) == pytest.approx(0.6)  # the teacher says down: the answer's side stays
    assert K.target(0.4, 1.0, 0.45, 1.0) == pytest.approx(0.45)  # towards 0.5 too, when that is what it says
    assert K.target(0.6, 2.0, None, 0.5) == K.sharpen(0.6, 2.0) == K.target(0.6, 2.0, 0.9, 0.0)
    with pytest.raises(ConfigError, match="calibrate_toward_teacher: expected a share from 0 to 1"):
        from_dict({"stage": ["calibrate"], "calibrate_toward_teacher": 1.5})


def test_the_rows_move_towards_the_teachers_forecast_in_the_dataset_row(monkeypatch, tmp_path):
    """``calibrate_toward_teacher``: the teacher's ``p_up`` is read from each training row's own trace."""
    import cortex.eval.generate as G
    from miner.config import TrainConfig

    rows = [row("ETH", 1, True) for _ in range(24)]  # every day up: the fitted factor is the cap, 1
    for i, r in enumerate(rows):  # the teacher: sure, and on the model's side except in every fourth row
        r["messages"] = [*r["prompt"], {"role": "assistant", "content": answer(r, 0.2 if i % 4 == 3 else 0.9)}]
    texts = [answer(r, 0.6) for r in rows]  # the model: always 0.6
    assert K.teacher_p_up(rows[0], CORTEX_TINY) == 0.9 and K.teacher_p_up(row("ETH", 1, True), CORTEX_TINY) is None
    monkeypatch.setattr(G.Generator, "load", classmethod(lambda cls, *a, **k: object()))
    monkeypatch.setattr(G, "evaluate", lambda gen, rs, **k: ModelScore("calibrate", *score_completions(texts, rs, k["config"])[:1],
                                                                      completions=texts,
                                                                      parts=score_completions(texts, rs, k["config"])[1]))
    cfg = TrainConfig(calibrate_max_sharpening=1.0, calibrate_toward_teacher=0.5)
    sft, report = K.calibration_rows(cfg, tmp_path, None, rows, CORTEX_TINY)
    stated = [json.loads(r["messages"][-1]["content"].split("<answer>")[1].split("</answer>")[0])["p_up"] for r in sft]
    assert report["toward_teacher"] == {"share": 0.5, "rows": 18}
    assert stated == [0.6 if i % 4 == 3 else 0.75 for i in range(24)]
