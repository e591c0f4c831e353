"""Hostile completions: every one gets a finite total in [floor, 1 + depth_max] and nothing raises.

The checks of time are the test's own timeout, never an assertion on a measured duration.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reward import PROMPT_USER, REASONING, answer, completion, sample

from cortex.reward import RewardConfig, score

CFG = RewardConfig()
MB = 1 << 20


def bounded(b, cfg=CFG):
    assert math.isfinite(b.total)
    assert cfg.floor <= b.total <= cfg.total_max
    assert b.parse_error is None or not b.parse_error.startswith("internal error")
    for part in (b.accuracy, b.direction_score, b.return_score):
        assert 0.0 <= part <= 1.0
    assert 0.0 <= b.depth <= cfg.depth_max
    assert 0.0 <= b.penalties <= cfg.penalty_cap
    return b


def body_with(field, raw_value):
    """An answer JSON whose ``field`` is the literal ``raw_value`` (not JSON-encoded)."""
    parts = [f'"{k}": {raw_value if k == field else json.dumps(v)}' for k, v in answer().items()]
    return "{" + ", ".join(parts) + "}"


HONEST = completion()
HOSTILE = {
    "empty": "",
    "no tags": "BTC will go up, p_up 0.9",
    "only answer": f"<answer>{json.dumps(answer())}</answer>",
    "two answers": HONEST + f"<answer>{json.dumps(answer(p_up=0.1))}</answer>",
    "answer inside reasoning": completion(f"{REASONING} <answer>{json.dumps(answer())}</answer>"),
    "think inside reasoning": completion(f"{REASONING} <think>again</think>"),
    "p_up above 1": completion(body=answer(p_up=1.5)),
    "p_up below 0": completion(body=answer(p_up=-0.5)),
    "NaN json": completion(raw=body_with("p_up", "NaN")),
    "Infinity json": completion(raw=body_with("return_pct", "Infinity")),
    "-Infinity json": completion(raw=body_with("return_pct", "-Infinity")),
    "NaN string": completion(raw=body_with("p_up", '"NaN"')),
    "Infinity string": completion(raw=body_with("return_pct", '"Infinity"')),
    "1e308": completion(raw=body_with("return_pct", "1e308")),
    "1e400": completion(raw=body_with("return_pct", "1e400")),
    "-1e400 p_up": completion(raw=body_with("p_up", "-1e400")),
    "400 digits": completion(raw=body_with("return_pct", "9" * 400)),
    "10**400": completion(raw=body_with("return_pct", str(10**400))),
    "10**400 p_up": completion(raw=body_with("p_up", str(10**400))),
    "5000 digits": completion(raw=body_with("return_pct", "9" * 5000)),
    "tiny denormal": completion(raw=body_with("p_up", "5e-324")),
    "nested json": completion(raw=json.dumps({"answer": answer()})),
    "deep nesting": completion(raw="[" * 500 + "]" * 500),
    "nested value": completion(raw=body_with("p_up", '{"p_up": {"p_up": 0.6}}')),
    "trailing garbage json": completion(raw=json.dumps(answer()) + " trailing"),
    "trailing garbage text": HONEST + "\nThanks for reading! <|im_end|>",
    "full-width tags": HONEST.replace("<answer>", "＜answer＞").replace("</answer>", "＜/answer＞"),
    "full-width digits in json": completion(raw=json.dumps(answer()).replace("0.62", "０.６２")),
    "zero-width space in tag": HONEST.replace("<answer>", "<ans\u200bwer>"),
    "zero-width space in json": completion(raw=json.dumps(answer()).replace("0.62", "0.6\u200b2")),
    "rtl override": "\u202e" + HONEST,
    "rtl marks in json": completion(raw="\u200f" + json.dumps(answer())),
    "cyrillic homoglyph tag": HONEST.replace("<answer>", "<\u0430nswer>"),
    "uppercase tag": HONEST.replace("<answer>", "<ANSWER>").replace("</answer>", "</ANSWER>"),
    "prompt echoed": completion(PROMPT_USER),
    "prompt echoed as answer": f"<think>{REASONING}</think><answer>{PROMPT_USER}</answer>",
    "lone surrogate": completion(REASONING + "\ud800"),
    "null bytes": completion(REASONING + "\x00" * 100),
    "control chars": "\x1b[2J" + HONEST,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_completion_is_bounded(name):
    b = bounded(score(HOSTILE[name], sample()))
    benign = {"trailing garbage text", "prompt echoed", "lone surrogate", "null bytes",
              "think inside reasoning", "full-width tags", "zero-width space in tag",
              "cyrillic homoglyph tag", "tiny denormal", "1e308"}
    if name not in benign:
        assert b.total == CFG.floor, (name, b.parse_error)


def test_homoglyph_tags_are_text_not_tags():
    for name in ("full-width tags", "zero-width space in tag", "cyrillic homoglyph tag"):
        assert score(HOSTILE[name], sample()).parse_error == "no <answer> block"


def test_padding_by_repetition_never_beats_the_concise_honest_answer():
    honest = score(HONEST, sample())
    short = "Momentum is positive after the 2.4% weekly gain. Overall I lean bullish."
    short_b = score(completion(short), sample())
    for base in (REASONING, short):
        for times in (2, 5, 20, 200):
            padded = score(completion("\n".join([base] * times)), sample())
            assert padded.total < honest.total
            assert padded.total <= score(completion(base), sample()).total
    assert short_b.total < honest.total  # the short one still earns less depth than the full one


def test_prompt_echo_earns_no_depth():
    echoed = score(completion(PROMPT_USER + " Overall I lean bullish."), sample())
    assert echoed.depth == 0.0
    assert echoed.total < score(HONEST, sample()).total


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shape", ["x ", "<", "<think>", "<answer>", "1,", "9", "\u200b",
                                   "Overall bullish. ", "{[", "\n"])
def test_megabytes_finish(shape):
    text = shape * (3 * MB // len(shape))
    bounded(score(text, sample()))
    bounded(score(completion(text), sample()))
    # just under the cap: everything after the length check runs on it
    near = shape * ((CFG.max_completion_chars - 200) // len(shape))
    bounded(score(completion(near[: CFG.max_completion_chars - 200]), sample()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000))
def test_arbitrary_text_is_bounded(text):
    bounded(score(text, sample()))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_arbitrary_reasoning_in_a_valid_frame(reasoning):
    b = bounded(score(completion(reasoning), sample()))
    if "<" not in reasoning and ">" not in reasoning:
        assert b.parse_error is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                       children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(answer())), JSON_VALUES)
def test_arbitrary_answer_values(field, value):
    raw = body_with(field, json.dumps(value))  # json.dumps writes NaN/Infinity literally
    bounded(score(completion(raw=raw), sample()))


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1), st.floats(-1000, 1000), st.floats(-0.99, 5), st.floats(0, 2),
       st.sampled_from(["up", "down"]))
def test_valid_answers_score_within_bounds(p_up, ret_pct, outcome, vol, direction):
    b = bounded(score(completion(body=answer(p_up=p_up, return_pct=ret_pct, direction=direction)),
                      sample(outcome_return=outcome, realized_vol=vol)))
    assert b.parse_error is None


@settings(max_examples=100, deadline=None)
@given(st.floats(-5, -0.01), st.floats(0, 3), st.floats(0, 2), st.floats(0, 1))
def test_any_valid_config_stays_bounded(floor, depth_max, weight, share):
    cfg = RewardConfig(floor=floor, depth_max=depth_max, direction_weight=weight + 0.01,
                       return_weight=1 - share, penalty_cap=-floor * share * 0.99)
    for text in (HONEST, HOSTILE["two answers"], "\n".join([REASONING] * 30)):
        bounded(score(text, sample(), cfg), cfg)


PIECES = ["<think>", "</think>", "<answer>", "</answer>", json.dumps(answer()), "{", "}", '"p_up"',
          ":", ",", " ", "\n", "Overall bullish.", "NaN", "1e999", "0.62", "＜answer＞", "\u200b"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=30))
def test_arbitrary_tag_soup_is_bounded(pieces):
    text = "".join(pieces)
    bounded(score(text, sample()))
    bounded(score(text.replace("</think>", "", 1), sample()))
