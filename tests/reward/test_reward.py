"""The reward's components, parser and bounds (DESIGN.md §8, docs/reward.md)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from cortex.errors import CortexError
from cortex.reward import RewardConfig, outcome_of, parse_completion, prompt_text, score
from cortex.reward import components as C
from cortex.reward.text import normalise, numbers, words

CFG = RewardConfig()

PROMPT_USER = (
    "BTC daily data up to 2024-05-01 (UTC).\n"
    "date close ret% vol%\n"
    "2024-04-29 63120 -1.2 +5\n"
    "2024-04-30 63890 +1.2 -3\n"
    "2024-05-01 64210.53 +0.5 +12\n"
    "Features:\n"
    "- return 1d/7d/30d: +0.5% / +2.4% / -4.1%\n"
    "- realised vol 7d/30d: 3.9% / 4.2% a day\n"
    "- taker-buy ratio 7d: 0.52\n"
    "- from 30d/90d high: -8.7% / -12.3%\n"
    "Forecast BTC 7 days ahead."
)
REASONING = (
    "BTC closed at 64,210.53, up from 63,120 two days earlier. The 7d return is +2.4% while the "
    "30d return is -4.1%, so short-term momentum has turned positive inside a broader pullback. "
    "Daily volatility of 3.9% is moderate for this asset. A taker-buy ratio of 0.52 shows slightly "
    "more aggressive buyers than sellers, and the last day's volume change of +12% confirms the "
    "bounce. Being 8.7% below the 30-day high leaves room to recover, although the monthly trend "
    "is still negative and a failed retest could send price lower. Overall I lean bullish for the "
    "next 7 days with modest conviction."
)


def sample(**over):
    row = {
        "asset": "BTC", "cutoff": "2024-05-01", "horizon_days": 7, "outcome_return": 0.031,
        "outcome_direction": "up", "realized_vol": 0.04,
        "messages": [
            {"role": "system", "content": "You are Cortex. Answer as <think></think><answer>{}</answer>."},
            {"role": "user", "content": PROMPT_USER},
            {"role": "assistant", "content": "<think>teacher 99999.5</think><answer>{}</answer>"},
        ],
    }
    row.update(over)
    return row


def answer(**over):
    body = {"asset": "BTC", "horizon_days": 7, "direction": "up", "p_up": 0.62, "return_pct": 2.5}
    body.update(over)
    return body


def completion(reasoning=REASONING, body=None, raw=None):
    text = raw if raw is not None else json.dumps(body if body is not None else answer())
    return f"<think>{reasoning}</think>\n<answer>{text}</answer>"


# ------------------------------------------------------------------ accuracy

def test_perfect_prediction_scores_accuracy_exactly_one():
    r = 0.031
    b = score(completion(body=answer(p_up=1.0, return_pct=r * 100)), sample(outcome_return=r))
    assert b.parse_error is None
    assert (b.direction_score, b.return_score, b.accuracy) == (1.0, 1.0, 1.0)
    down = score(completion(REASONING.replace("bullish", "bearish"),
                            answer(direction="down", p_up=0.0, return_pct=-2.0)),
                 sample(outcome_return=-0.02, outcome_direction="down"))
    assert down.accuracy == 1.0 and down.penalties == 0.0


def test_direction_score_is_one_minus_brier():
    assert C.direction_score(0.62, True) == pytest.approx(1 - 0.38**2)
    assert C.direction_score(0.62, False) == pytest.approx(1 - 0.62**2)
    assert C.direction_score(0.5, True) == C.direction_score(0.5, False) == 0.75
    assert C.direction_score(0.0, True) == 0.0


def test_return_score_is_volatility_scaled_and_bounded():
    # scale = 2 vols * 4% = 8 points; error 0.6 points -> 1 - 0.6/8
    assert C.return_score(2.5, 0.031, 0.04, CFG) == pytest.approx(0.925)
    assert C.return_score(11.1, 0.031, 0.04, CFG) == 0.0  # error 8 points: nothing
    assert C.return_score(-900.0, 0.031, 0.04, CFG) == 0.0
    # min_vol floors the scale: 2 * 0.5% = 1 point
    assert C.return_score(2.5, 0.031, 0.0, CFG) == pytest.approx(0.4)
    # near a zero return nothing explodes (a relative tolerance would divide by ~0)
    assert C.return_score(0.1, 1e-12, 0.04, CFG) == pytest.approx(1 - 0.1 / 8)


def test_accuracy_weights_are_normalised():
    assert C.accuracy(1.0, 0.0, CFG) == pytest.approx(0.6)
    cfg = RewardConfig(direction_weight=3.0, return_weight=1.0)
    assert C.accuracy(0.5, 1.0, cfg) == pytest.approx(0.625)
    b = score(completion(), sample())
    assert b.accuracy == pytest.approx(0.6 * (1 - 0.38**2) + 0.4 * 0.925)


# ------------------------------------------------------------------ depth

def test_depth_saturates_and_vanishes_when_overlong():
    assert C.depth(10, 10, CFG) == 0.0
    assert C.depth(70, 70, CFG) == pytest.approx(0.5 * 50 / 100)
    assert C.depth(120, 120, CFG) == 0.5
    assert C.depth(1200, 900, CFG) == 0.5
    assert C.depth(1201, 1201, CFG) == 0.0


def test_depth_counts_novel_tokens_only():
    fresh = " ".join(f"w{i}" for i in range(200))
    assert C.novel_token_count(words(fresh), frozenset(), CFG) == 200
    looped = " ".join(["the market went up today"] * 40)
    assert C.novel_token_count(words(looped), frozenset(), CFG) <= 8
    prompt = C.prompt_facts(PROMPT_USER, CFG.prompt_copy_ngram)
    echoed = words(normalise(PROMPT_USER))
    assert C.novel_token_count(echoed, prompt.grams, CFG) < 10


def test_depth_in_score():
    short = score(completion("Overall bullish."), sample())
    full = score(completion(), sample())
    assert short.depth == 0.0
    assert 0.0 < full.depth <= CFG.depth_max
    assert full.reasoning_tokens == len(words(normalise(REASONING)))


# ------------------------------------------------------------------ repetition

def test_repetition_ratio_and_penalty():
    distinct = words(normalise(REASONING))
    assert C.repetition_ratio(distinct, REASONING, 4) < CFG.repetition_tolerance
    looped_text = "\n".join(["Momentum is positive."] * 20)
    ratio = C.repetition_ratio(words(normalise(looped_text)), looped_text, 4)
    assert ratio >= 0.9
    assert C.repetition_penalty(ratio, CFG) > 0.4
    assert C.repetition_penalty(0.0, CFG) == 0.0
    assert C.repetition_penalty(1.0, CFG) == CFG.repetition_max


def test_zero_width_characters_do_not_hide_repetition():
    line = "Momentum is positive and volume confirms it."
    lines = [line[: i % len(line)] + "\u200b" + line[i % len(line):] for i in range(30)]
    text = normalise("\n".join(lines))
    assert C.repetition_ratio(words(text), text, 4) > 0.9


# ------------------------------------------------------------------ contradiction

@pytest.mark.parametrize("text,expected", [
    ("Momentum is up. Overall I lean bearish.", "down"),
    ("Price fell. Overall I expect it to go up.", "up"),
    ("Overall bullish. Volume picked up.", "up"),  # the last *concluding* sentence decides
    ("Overall I am not bullish here.", None),  # negation: ambiguous
    ("Overall bullish, though the trend was down last month.", None),  # both sides: ambiguous
    ("The trend was down last month.", None),  # no conclusion cue
    ("", None),
])
def test_reasoning_conclusion(text, expected):
    assert C.reasoning_conclusion(normalise(text)) == expected


def test_contradiction_penalties():
    pen, why = C.contradiction("overall bullish.", answer(), CFG)
    assert pen == 0.0 and why is None
    pen, why = C.contradiction("overall bearish.", answer(), CFG)
    assert pen == CFG.contradiction_penalty and "reasoning concludes down" in why
    pen, why = C.contradiction("", answer(p_up=0.4), CFG)
    assert pen == CFG.contradiction_penalty and "p_up" in why
    pen, _ = C.contradiction("", answer(return_pct=-1.0), CFG)
    assert pen == CFG.contradiction_penalty
    pen, _ = C.contradiction("", answer(direction="down", p_up=0.5, return_pct=0.0), CFG)
    assert pen == 0.0  # 0.5 and 0 agree with either direction
    b = score(completion(REASONING.replace("bullish", "bearish")), sample())
    assert b.contradiction == CFG.contradiction_penalty
    assert b.total == pytest.approx(score(completion(), sample()).total - CFG.contradiction_penalty)


# ------------------------------------------------------------------ unsupported numbers

def test_number_normalisation():
    vals = [(n.value, n.integer) for n in numbers(normalise("1,234 and 3.10, 64.2k, 3,4,5 ６４２"))]
    assert vals == [(1234.0, True), (3.1, False), (64200.0, False), (3.0, True), (4.0, True),
                    (5.0, True), (642.0, True)]


def test_numbers_from_the_prompt_are_supported_in_any_format():
    facts = C.prompt_facts(PROMPT_USER, CFG.prompt_copy_ngram)
    ok = ("64,210.53 64210.5 64210 64.2k 64,000 63120 2.40% 2.4 0.024 -4.10% 0.52 52% 8.7% "
          "12.3 1. 2. 3. 7 days")
    pen, bad, checked = C.unsupported_numbers(normalise(ok), facts, answer(), CFG)
    assert (pen, bad) == (0.0, 0) and checked > 10


def test_invented_numbers_are_penalised_in_proportion():
    facts = C.prompt_facts(PROMPT_USER, CFG.prompt_copy_ngram)
    pen, bad, checked = C.unsupported_numbers(normalise("RSI is 71.3 and price 64210"), facts,
                                              answer(), CFG)
    assert (bad, checked) == (1, 2) and pen == pytest.approx(CFG.unsupported_numbers_max / 2)
    # full-width digits are folded, so an invented number cannot hide in another script
    pen, bad, _ = C.unsupported_numbers(normalise("ＲＳＩ ７１.３"), facts, answer(), CFG)
    assert bad == 1 and pen == CFG.unsupported_numbers_max
    # the answer's own estimate and small integers are exempt
    pen, bad, checked = C.unsupported_numbers(normalise("p_up 0.62, 62%, +2.5%, step 3"), facts,
                                              answer(), CFG)
    assert (pen, bad) == (0.0, 0) and checked == 3


def test_numbers_only_in_the_assistant_message_are_not_in_the_prompt():
    assert "99999" not in prompt_text(sample())
    b = score(completion(REASONING + " Target 99999.5."), sample())
    assert b.unsupported_numbers > 0 and any("not in the prompt" in n for n in b.notes)


def test_prompt_column_takes_precedence_and_strings_work():
    s = sample(prompt="BTC closed at 12345.6")
    s.pop("messages")
    assert prompt_text(s) == "BTC closed at 12345.6"
    b = score(completion("Overall bullish: closed at 12345.6, not 777.7."), s)
    assert b.unsupported_numbers == pytest.approx(CFG.unsupported_numbers_max / 2)


# ------------------------------------------------------------------ totals and caps

def test_total_formula_and_bounds():
    b = score(completion(), sample())
    assert b.total == pytest.approx(b.accuracy + b.depth - b.penalties)
    assert CFG.floor < b.total <= CFG.total_max


def test_penalties_are_capped_and_a_parseable_answer_beats_the_floor():
    bad = "\n".join(["Overall bearish at 77777.7 and 88888.8."] * 30)
    b = score(completion(bad, answer(p_up=0.0, return_pct=500.0)), sample())
    assert b.repetition + b.contradiction + b.unsupported_numbers > CFG.penalty_cap
    assert b.penalties == CFG.penalty_cap
    assert b.total == pytest.approx(b.accuracy + b.depth - CFG.penalty_cap)
    assert b.total > CFG.floor


def test_unparseable_is_the_floor_with_a_reason():
    b = score("I think it goes up.", sample())
    assert b.total == CFG.floor and b.parse_error == "no <answer> block" and b.answer is None
    cfg = RewardConfig(floor=-2.0)
    assert score("", sample(), cfg).total == -2.0


def test_breakdown_as_dict_is_json_ready():
    b = score(completion(), sample())
    data = json.loads(json.dumps(b.as_dict()))
    assert data["answer"]["p_up"] == 0.62 and data["parse_error"] is None


# ------------------------------------------------------------------ parser

def parse(text, asset="BTC", horizon=7):
    return parse_completion(text, asset, horizon, CFG)


def test_parser_accepts_the_format_and_a_template_opened_think():
    p = parse(completion())
    assert p.error is None and p.reasoning == REASONING and p.answer == answer()
    p = parse(f"{REASONING}</think><answer>{json.dumps(answer())}</answer>")
    assert p.error is None and p.reasoning == REASONING
    p = parse(f"  <think>r</think>  \n <answer> {json.dumps(answer(asset='btc'))} </answer>\n")
    assert p.error is None and p.answer["asset"] == "BTC"


@pytest.mark.parametrize("text,reason", [
    ("no tags at all", "no <answer>"),
    (f"<think>r</think>{'<answer>{}</answer>' * 2}", "2 <answer> blocks"),
    ("<think>r <answer>{}</answer></think><answer>{}</answer>", "2 <answer> blocks"),
    ("<think>r</think><think>s</think><answer>{}</answer>", "out of order"),
    ("<answer>{}</answer>", "out of order"),
    ("<think>r<answer>{}</answer>", "out of order"),
    ("<think>r</think><answer>{}", "out of order"),
    ("<THINK>r</THINK><answer>{}</answer>", "malformed tag"),
    ("hello <think>r</think><answer>{}</answer>", "text before <think>"),
    ("<think>r</think> Final answer: <answer>{}</answer>", "between </think> and <answer>"),
    (completion() + " and more", "text after </answer>"),
])
def test_parser_structure_errors(text, reason):
    p = parse(text)
    assert p.answer is None and reason in p.error


@pytest.mark.parametrize("raw,reason", [
    ("[1, 2]", "not a JSON object"),
    ("{'asset': 'BTC'}", "not valid JSON"),
    ('{"asset": "BTC"}', "lacks horizon_days"),
    (json.dumps({**answer(), "confidence": 0.9}), "unknown keys confidence"),
    ('{"asset":"BTC","asset":"BTC","horizon_days":7,"direction":"up","p_up":0.6,"return_pct":1}',
     "repeats a key"),
    (json.dumps(answer(asset="ETH")), "asset"),
    (json.dumps(answer(horizon_days=1)), "horizon_days"),
    (json.dumps(answer(horizon_days=7.0)), "horizon_days"),
    (json.dumps(answer(horizon_days=True)), "horizon_days"),
    (json.dumps(answer(direction="UP")), "direction"),
    (json.dumps(answer(direction="sideways")), "direction"),
    (json.dumps(answer(p_up=1.2)), "outside [0, 1]"),
    (json.dumps(answer(p_up=-0.01)), "outside [0, 1]"),
    (json.dumps(answer(p_up="0.6")), "p_up is not a finite number"),
    (json.dumps(answer(p_up=True)), "p_up is not a finite number"),
    (json.dumps(answer(p_up={"value": 0.6})), "p_up is not a finite number"),
    (json.dumps(answer(return_pct=1000.5)), "exceeds"),
    (json.dumps(answer(return_pct=[2.5])), "return_pct is not a finite number"),
])
def test_parser_answer_errors(raw, reason):
    p = parse(completion(raw=raw))
    assert p.answer is None and reason in p.error


def test_boundaries_are_accepted():
    for body in (answer(p_up=0.0, direction="down", return_pct=-1000.0),
                 answer(p_up=1, return_pct=1000), answer(p_up=0.5, return_pct=0)):
        assert parse(completion(body=body)).error is None


# ------------------------------------------------------------------ sample and config

def test_sample_errors_are_cortex_errors():
    for key in ("asset", "horizon_days", "outcome_return", "realized_vol"):
        s = sample()
        s.pop(key)
        with pytest.raises(CortexError, match=key):
            score(completion(), s)
    with pytest.raises(CortexError):
        outcome_of(sample(outcome_return=float("nan")))
    with pytest.raises(CortexError):
        outcome_of(sample(outcome_direction="sideways"))
    s = sample()
    s.pop("outcome_direction")
    assert outcome_of(s).went_up is True  # derived from the sign of the return


def test_config_defaults_validate_and_are_frozen():
    assert all(f.default is not dataclasses.MISSING for f in dataclasses.fields(RewardConfig))
    with pytest.raises(dataclasses.FrozenInstanceError):
        CFG.floor = 0.0  # type: ignore[misc]
    bad = [{"penalty_cap": 1.0}, {"floor": 0.0}, {"direction_weight": -1.0},
           {"direction_weight": 0.0, "return_weight": 0.0}, {"depth_min_tokens": 200},
           {"min_vol": 0.0}, {"repetition_tolerance": 1.0}, {"floor": math.nan},
           {"depth_max": True}]
    for kwargs in bad:
        with pytest.raises(CortexError):
            RewardConfig(**kwargs)
    assert RewardConfig(floor=-2.0, penalty_cap=1.5).total_max == 1.5
