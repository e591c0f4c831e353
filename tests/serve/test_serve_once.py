"""`cortex serve --once ASSET:DAYS`: the server started on a free port, one POST /v1/forecast over HTTP, the
answer printed and the server stopped; a question the competition does not ask is one clear error line."""

from __future__ import annotations

import pytest

from cortex.errors import CortexError
from cortex.model.pointer import local_base
from cortex.protocol.competition import CORTEX_TINY
from cortex.serve.once import forecast_once, parse_question, start, summary

from serve_fixtures import SOURCE, tiny_base


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("once") / "base", seed=0)


def test_parse_question():
    assert parse_question("BTC:7") == ("BTC", 7) and parse_question("eth:1") == ("eth", 1)
    for bad in ("BTC", "BTC:", ":7", "BTC:seven", "BTC:-1"):
        with pytest.raises(CortexError, match="ASSET:DAYS"):
            parse_question(bad)


def test_once_serves_one_forecast_prints_it_and_stops(base, capsys):
    from cortex.cli import main

    assert main(["serve", "--base", str(base), "--device", "cpu", "--threads", "1", "--once", "BTC:7"]) == 0
    out = capsys.readouterr().out
    revision = local_base(base, CORTEX_TINY.base.repo).revision
    assert f"{CORTEX_TINY.base.repo}@{revision} served at http://127.0.0.1:" in out
    assert 'POST /v1/forecast {"asset": "BTC", "horizon_days": 7}: answered in' in out
    assert "market it saw: synthetic" in out and "ret_7d" in out
    assert "forecast: none (the answer does not parse" in out  # a random base answers out of format
    assert "served and stopped in" in out


def test_once_refuses_a_question_the_competition_does_not_ask(base, capsys):
    """Refused in one line before the base loads; the server refuses it too, and that is one line as well."""
    from cortex.cli import main
    from cortex.serve.app import create_app
    from cortex.serve.base import Served
    from cortex.serve.engine import Engine

    assert main(["serve", "--base", str(base), "--device", "cpu", "--once", "XYZ:7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown asset 'XYZ'" in err[0]
    assert main(["serve", "--base", str(base), "--once", "BTC:5"]) == 2
    assert "unknown horizon_days '5'" in capsys.readouterr().err
    assert main(["serve", "--base", str(base), "--once", "BTC"]) == 2
    assert "--once takes ASSET:DAYS" in capsys.readouterr().err
    ref = local_base(base, CORTEX_TINY.base.repo)
    app = create_app(Served(Engine.load(ref.path, ref.revision, device="cpu"), ref), CORTEX_TINY, SOURCE)
    with pytest.raises(CortexError, match="^POST /v1/forecast: 400 unknown asset 'XYZ'"):
        forecast_once(app, "127.0.0.1", 0, "XYZ", 7)


def test_start_takes_a_free_port_and_refuses_a_busy_one():
    from fastapi import FastAPI
    import httpx

    app = FastAPI()
    app.get("/ping")(lambda: {"ok": True})
    server, thread, url = start(app)
    try:
        assert httpx.get(f"{url}/ping").json() == {"ok": True}
        with pytest.raises(CortexError, match="cannot listen"):
            start(app, port=int(url.rsplit(":", 1)[1]))
    finally:
        server.should_exit = True
        thread.join(10)
    assert not thread.is_alive()


def test_summary_of_a_parsed_forecast():
    answer = {"asset": "BTC", "horizon_days": 1, "url": "http://127.0.0.1:1",
              "model": {"repo": "cortex/tiny-llama", "revision": "abc"},
              "market": {"source": "csv:data", "synthetic": False, "cutoff": "2024-05-13",
                         "features": {"ret_1d": 0.0123, "rel_btc_7d": None}},
              "usage": {"prompt_tokens": 300, "completion_tokens": 40},
              "forecast": {"asset": "BTC", "horizon_days": 1, "direction": "up", "p_up": 0.62, "return_pct": 0.8},
              "reasoning": "Momentum is up.", "parse_error": None, "completion": "<think>…"}
    text = summary(answer, 1.25).splitlines()
    assert text[0] == "cortex/tiny-llama@abc served at http://127.0.0.1:1"
    assert text[1].endswith("answered in 1.2 s (300 prompt tokens, 40 new)")
    assert text[2] == "market it saw: csv:data, up to 2024-05-13: ret_1d +0.0123, rel_btc_7d None"
    assert text[3:] == ["forecast: up, p_up 0.62, return_pct 0.8", "reasoning: Momentum is up."]
