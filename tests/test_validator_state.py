"""The validator's state file: round trip, atomic save, history cap, bad files."""

import json

import pytest

from validator.state import HISTORY, ModelResult, RoundProgress, StateError, ValidatorState, load, save


def result(round_, **kw):
    return ModelResult(round=round_, competition="cortex-tiny", uid=1, repo="m/a", revision="r" * 40,
                       commit_block=5, **kw)


def test_round_trip_and_fresh_start(tmp_path):
    path = tmp_path / "state.json"
    assert load(path) == ValidatorState()
    state = ValidatorState(round=3, last_weights_block=120, smoothed={"cortex-tiny": {"hk": 0.4}})
    state.record("hk", result(3, win_rate=0.7, metrics={"brier": 0.21}))
    state.progress = RoundProgress(key="cortex-tiny@100", done={"cortex-tiny@m/a@r": {"rewards": [0.1]}})
    save(path, state)
    assert load(path) == state
    assert json.loads(path.read_text())["schema"] == 1  # readable JSON, never pickle


def test_history_is_capped_and_rounds_replace(tmp_path):
    state = ValidatorState()
    for r in range(HISTORY + 3):
        state.record("hk", result(r))
    state.record("hk", result(HISTORY + 2, reason="non_finite"))
    rounds = [r.round for r in state.models["hk"]]
    assert len(rounds) == HISTORY and rounds[-1] == HISTORY + 2
    assert state.models["hk"][-1].reason == "non_finite" and rounds.count(HISTORY + 2) == 1


@pytest.mark.parametrize("text", ["{not json", "[]", '{"schema": 99}', '{"schema": 1, "round": "x"}'])
def test_bad_files_say_what_to_do(tmp_path, text):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateError, match="move it aside|move the file aside"):
        load(path)


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    save(path, ValidatorState(round=1))
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save(path, ValidatorState(round=2))
    assert load(path).round == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
