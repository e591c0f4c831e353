"""The validator's state file: round trip, a schema 2 file read with its recorded day bases dropped, bad files,
atomic save."""

import json

import pytest

from validator.state import SCHEMA, RoundProgress, StateError, ValidatorState, load, save


def test_round_trip_and_fresh_start(tmp_path):
    path = tmp_path / "state.json"
    assert load(path) == ValidatorState()
    state = ValidatorState(round=3, last_weights_block=120, progress=RoundProgress("100:cortex-tiny", {"4": 1.0}),
                           refused={"m/a@r": {"reason": "non_finite", "detail": "lora_B holds NaN"}})
    save(path, state)
    assert load(path) == state
    assert json.loads(path.read_text())["schema"] == SCHEMA  # readable JSON, never pickle


def test_a_schema_2_file_loads_without_the_day_bases_it_recorded(tmp_path):
    """Schema 2 recorded each day's base from when the validator ran; the chain's history replaced it."""
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"schema": 2, "round": 4, "last_weights_block": 90,
                                "progress": {"key": "80:c", "weights": None},
                                "bases": {"c": {"2024-03-01": "base@1"}}, "refused": {}}))
    state = load(path)
    assert state == ValidatorState(round=4, last_weights_block=90, progress=RoundProgress("80:c"))
    save(path, state)
    assert "bases" not in json.loads(path.read_text()) and load(path) == state


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
