"""Teachers: the offline analyst and DeepSeek R1 through an OpenAI-compatible server on 127.0.0.1."""

import json
import re

import pytest

from cortex.data import build_samples, split_by_time
from fake_services import FakeOpenRouter, serve
from cortex.data.sources import SyntheticSource
from cortex.data.teachers import AnalystTeacher, TeacherError, get_teacher
from cortex.data.teachers.openrouter import OpenRouterTeacher, compose
from cortex.retry import RetryPolicy
from cortex.reward import score

FRAMES = SyntheticSource(seed=9).load(["BTC", "ETH", "SOL"], "2021-01-01", "2023-12-31")
SPLITS, PLAN = split_by_time(build_samples(FRAMES, ["BTC", "ETH", "SOL"], [1, 7], stride=2))


@pytest.fixture(scope="module")
def analyst():
    teacher = get_teacher("analyst")
    teacher.fit(SPLITS["train"])
    return teacher


def test_analyst_fits_on_the_training_window_only(analyst):
    assert analyst.fit_window == (min(s.cutoff for s in SPLITS["train"]), max(s.cutoff for s in SPLITS["train"]))
    assert analyst.fit_window[1] <= PLAN.ranges["train"][1]
    described = analyst.describe()
    assert described["fit_window"][1] < PLAN.ranges["validation"][0]
    assert set(described["horizons"]) == {"1", "7"}
    # refitting on a different (later) window changes the model: it really is fitted on what it sees
    other = AnalystTeacher()
    other.fit(SPLITS["validation"] + SPLITS["test"])
    s = SPLITS["test"][0]
    assert other.predict(s)[0] != analyst.predict(s)[0]
    with pytest.raises(TeacherError, match="fit"):
        AnalystTeacher().predict(s)
    with pytest.raises(TeacherError, match="need at least 30"):
        AnalystTeacher().fit(SPLITS["train"][:10])


def test_analyst_is_deterministic_and_scores_cleanly(analyst):
    samples = SPLITS["test"][::7]
    first = analyst.complete(samples)
    assert first == analyst.complete(samples)
    for sample, text in zip(samples, first):
        result = score(text, sample.row())
        assert result.parse_error is None, result.parse_error
        assert result.unsupported_numbers == 0, (result.notes, text)  # cites only prompt numbers
        assert result.contradiction == 0 and result.repetition == 0, (result.notes, text)
        assert result.depth == pytest.approx(0.5)  # deep enough for full credit
        answer = json.loads(text.split("<answer>")[1].split("</answer>")[0])
        assert answer["asset"] == sample.asset and answer["horizon_days"] == sample.horizon_days
        assert 0.02 <= answer["p_up"] <= 0.98
        assert (answer["direction"] == "up") == (answer["p_up"] >= 0.5)


def test_analyst_words_reasons_the_same_steps_without_numbers(analyst):
    words = get_teacher("analyst-words")
    assert words.name == "analyst-words" and analyst.name == "analyst"
    words.fit(SPLITS["train"])
    samples = SPLITS["test"][::7]
    for sample, cited, plain in zip(samples, analyst.complete(samples), words.complete(samples)):
        assert plain.split("</think>")[1] == cited.split("</think>")[1]  # the same answer
        reasoning = plain.split("</think>")[0]
        # the same numbered steps, their conclusions (momentum, position, weighing) unchanged ...
        assert [line.split(":")[0] for line in reasoning.splitlines()] == \
            [line.split(":")[0] for line in cited.split("</think>")[0].splitlines()]
        assert cited.split("</think>")[0].splitlines()[-1] == reasoning.splitlines()[-1]
        # ... and no number but step labels and the day spans the prompt names
        digits = re.findall(r"\d+(?:\.\d+)?", re.sub(r"\b\d+(-day| days)\b", "", reasoning))
        assert set(digits) <= {str(n) for n in range(1, 10)}, reasoning
        result = score(plain, sample.row())
        assert result.parse_error is None and result.unsupported_numbers == 0, (result.notes, plain)
        assert result.contradiction == 0 and result.repetition == 0 and result.depth == pytest.approx(0.5), plain
    with pytest.raises(TeacherError, match="analyst-words"):
        get_teacher("analyst-numbers")


def test_a_blind_analyst_writes_the_same_steps_with_the_base_rate(analyst):
    """``-blind``: the informed analyst's reasoning steps, every forecast the horizon's training base rate."""
    blind, words = get_teacher("analyst-blind"), get_teacher("analyst-words-blind")
    assert (blind.name, words.name) == ("analyst-blind", "analyst-words-blind") and words.words
    for teacher in (blind, words):
        teacher.fit(SPLITS["train"])
    informed = [h for h, m in analyst.models.items() if h and m["informed"]]
    assert informed, "the synthetic market's analyst must be informed at some horizon for this test to mean anything"
    samples = SPLITS["test"][::5]
    for h in (1, 7):
        at = [s for s in samples if s.horizon_days == h]
        assert {round(blind.predict(s)[0], 6) for s in at} == {round(float(min(max(blind.models[h]["base_rate"], 0.02), 0.98)), 6)}
    assert len({round(analyst.predict(s)[0], 3) for s in samples if s.horizon_days in informed}) > 5
    for sample, cited, plain in zip(samples, analyst.complete(samples), blind.complete(samples)):
        # the same question and steps 1-4 word for word (only the weighing and the conclusion follow p_up)
        assert plain.split("</think>")[0].splitlines()[:5] == cited.split("</think>")[0].splitlines()[:5]
        result = score(plain, sample.row())
        assert result.parse_error is None and result.unsupported_numbers == 0, (result.notes, plain)
    assert blind.describe()["blind"] is True and analyst.describe()["blind"] is False


def test_a_weaker_analyst_moves_its_forecasts_a_share_of_the_way(analyst):
    """``strength=k``: each informed forecast is the base rate plus k times the analyst's move from it, on the
    same side, with the same weighed signals; 0 is the blind analyst, and a share outside [0, 1] is refused."""
    weak, none = AnalystTeacher(strength=0.3), AnalystTeacher(strength=0.0)
    assert weak.name == "analyst@0.3"
    for teacher in (weak, none):
        teacher.fit(SPLITS["train"])
    moved = 0
    for sample in SPLITS["test"][::5]:
        m = analyst.models.get(sample.horizon_days, analyst.models[0])
        p, q, z = analyst.predict(sample)[0], weak.predict(sample)[0], none.predict(sample)[0]
        if not m["informed"] or not 0.02 < p < 0.98:  # the base rate there, or a clipped forecast
            continue
        assert q == pytest.approx(m["base_rate"] + 0.3 * (p - m["base_rate"]), abs=1e-9)
        assert z == pytest.approx(m["base_rate"])
        moved += abs(p - m["base_rate"]) > 0.05
    assert moved > 5
    with pytest.raises(TeacherError, match="strength"):
        AnalystTeacher(strength=1.5)


def test_a_teachers_share_is_named_as_it_reports_itself():
    """``analyst-words@0.5`` (a miner's ``teacher``) is the analyst in words at half its way from the base rate:
    the name the teacher gives the dataset's card is the name that builds it again."""
    for name in ("analyst@0.3", "analyst-words@0.5", "analyst-words-blind@0.5"):
        teacher = get_teacher(name)
        assert teacher.name == name and get_teacher(teacher.name).strength == teacher.strength
    assert get_teacher("analyst-words@0.5").words and get_teacher("analyst@1").strength == 1.0
    for bad in ("analyst@0", "analyst@1.5", "analyst@x", "analyst@"):
        with pytest.raises(TeacherError, match="share after @"):
            get_teacher(bad)
    with pytest.raises(TeacherError, match="unknown teacher"):
        get_teacher("openrouter@0.5")


def test_analyst_brier_not_worse_than_a_coin(analyst):
    test = SPLITS["test"]
    brier = sum((analyst.predict(s)[0] - (s.outcome_direction == "up")) ** 2 for s in test) / len(test)
    assert brier < 0.27  # a report lives in bench/teacher_baseline.py; this only catches nonsense


def test_openrouter_needs_a_key(monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(TeacherError, match="OPENROUTER_API_KEY"):
        get_teacher("openrouter")
    with pytest.raises(TeacherError, match="unknown teacher"):
        get_teacher("gpt")


def r1_reply(messages):
    user = messages[-1]["content"]
    asset = user.split()[0]
    horizon = int(user.rsplit("horizon_days ", 1)[1].rstrip(").").split()[0])
    answer = {"asset": asset, "horizon_days": horizon, "direction": "up", "p_up": 0.6, "return_pct": 1.0}
    return "The weekly trend is positive and flow is balanced. Overall I lean up.", (
        f"<answer>{json.dumps(answer)}</answer>")


def test_openrouter_reads_reasoning_retries_and_caches(tmp_path):
    fake = FakeOpenRouter(r1_reply, fail_first=1)
    samples = SPLITS["validation"][:3]
    with serve(fake) as url:
        teacher = OpenRouterTeacher(api_key="sk-test", base_url=url, cache_dir=tmp_path,
                                    policy=RetryPolicy(retries=3, backoff=0.01), rate_limit=100)
        out = teacher.complete(samples)
        assert len(fake.requests) == 4  # one 429, then three answers
        again = OpenRouterTeacher(api_key="sk-test", base_url=url, cache_dir=tmp_path, rate_limit=100)
        assert again.complete(samples) == out and again.sent == 0  # no request paid twice
    bodies = [r["body"] for r in fake.requests[1:]]
    assert all(b["model"] == "deepseek/deepseek-r1" and b["include_reasoning"] is True for b in bodies)
    sent = sorted(json.dumps(b["messages"]) for b in bodies)
    assert sent == sorted(json.dumps([dict(m) for m in s.prompt]) for s in samples)
    assert out[0].startswith("<think>The weekly trend is positive") and out[0].endswith("</answer>")
    assert score(out[0], samples[0].row()).parse_error is None
    assert len(list(tmp_path.rglob("*.json"))) == 3


def test_openrouter_failure_is_none_not_a_crash(tmp_path):
    with serve(FakeOpenRouter(r1_reply, fail_first=100)) as url:
        teacher = OpenRouterTeacher(api_key="k", base_url=url, cache_dir=tmp_path,
                                    policy=RetryPolicy(retries=2, backoff=0.01),
                                    rate_limit=100)
        assert teacher.complete(SPLITS["validation"][:2]) == [None, None]
    assert len(teacher.errors) == 2 and "gave up after 3 attempts" in teacher.errors[0]


def test_compose_fallbacks():
    ans = '{"asset": "BTC", "horizon_days": 1, "direction": "down", "p_up": 0.4, "return_pct": -1}'
    want = f"<think>inside</think><answer>{ans}</answer>"
    assert compose(None, f"<think>inside</think>\n<answer>{ans}</answer>") == want
    assert compose("r", f"Final answer: {ans}") == f"<think>r</think><answer>{ans}</answer>"
    assert compose("r", "no answer at all") is None
