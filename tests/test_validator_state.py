"""The validator's state file: round trip, the base of each question day, bad files, atomic save."""

import json

import pytest

from validator.state import SCHEMA, RoundProgress, StateError, ValidatorState, load, save


def test_round_trip_and_fresh_start(tmp_path):
    path = tmp_path / "state.json"
    assert load(path) == ValidatorState()
    state = ValidatorState(round=3, last_weights_block=120, progress=RoundProgress("100:cortex-tiny", {"4": 1.0}),
                           refused={"m/a@r": {"reason": "non_finite", "detail": "lora_B holds NaN"}})
    state.day_bases("cortex-tiny", ["2024-03-01", "2024-03-02"], "base@1")
    save(path, state)
    assert load(path) == state
    assert json.loads(path.read_text())["schema"] == SCHEMA  # readable JSON, never pickle


def test_each_question_day_keeps_the_base_that_was_current_and_old_days_drop():
    state = ValidatorState()
    assert state.day_bases("c", ["2024-03-01", "2024-03-02"], "base@1") == {"2024-03-01": "base@1",
                                                                            "2024-03-02": "base@1"}
    after_merge = state.day_bases("c", ["2024-03-02", "2024-03-03"], "base@2")  # the averager merged a new base
    assert after_merge == {"2024-03-02": "base@1", "2024-03-03": "base@2"}
    assert state.bases["c"] == after_merge


@pytest.mark.parametrize("text", ["{not json", "[]", '{"schema": 99}', '{"schema": 1, "round": 1}',
                                  '{"schema": %d, "round": "x"}' % SCHEMA])
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
