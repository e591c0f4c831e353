"""`cortex serve` through clients nobody here wrote: the `openai` SDK (chat, streaming, forecast) against the
server on 127.0.0.1, over a tiny base built in code; bad input answered with one clear error each while the
server keeps serving; a new base swapped in without dropping a queued request, and one that fails its
hash check or whose folder is gone refused while the old one keeps serving."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from cortex.eval.generate import Generator
from cortex.hub.local import LocalStore
from cortex.model.pointer import BaseRef, local_base, model_hash
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import CORTEX_TINY
from cortex.serve.app import Limits, create_app
from cortex.serve.base import Follower, Served
from cortex.serve.engine import Engine, EngineClosed
from cortex.serve.once import start
from cortex.serve.forecast import build_question, forecast_answer

from serve_fixtures import SOURCE, tiny_base

REPO = CORTEX_TINY.base.repo


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return tiny_base(root / "a", seed=0), tiny_base(root / "b", seed=1)


@pytest.fixture(scope="module")
def server(bases):
    """The app over base a, served by uvicorn on 127.0.0.1 in a thread."""
    ref = local_base(bases[0], REPO)
    served = Served(Engine.load(ref.path, ref.revision, device="cpu"), ref)
    app = create_app(served, CORTEX_TINY, SOURCE, limits=Limits(max_body_bytes=32 << 10, max_tokens=64,
                                                                  max_prompt_tokens=1500))
    srv, thread, url = start(app)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    yield client, served, url
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def reference(bases):
    """The project's own greedy generator over the same base: what the server must answer."""
    gen = Generator.load(bases[0], device="cpu", max_new_tokens=12, batch_size=1)
    return gen


CHAT = [{"role": "system", "content": "You are Cortex."}, {"role": "user", "content": "BTC daily data: up 3%."}]


def test_chat_matches_the_projects_generator(server, reference):
    client, served, _ = server
    answer = client.chat.completions.create(model=REPO, messages=CHAT, max_tokens=12)
    assert answer.choices[0].message.content == reference.generate([CHAT])[0][0]
    assert answer.system_fingerprint == served.ref.revision
    assert answer.usage.prompt_tokens == len(reference.prompt_ids([CHAT])[0])
    assert 1 <= answer.usage.completion_tokens <= 12
    assert answer.choices[0].finish_reason in ("stop", "length")
    models = client.models.list()
    assert [m.id for m in models.data] == [REPO]


def test_streaming_gives_the_same_text(server):
    client, _, _ = server
    whole = client.chat.completions.create(model=REPO, messages=CHAT, max_tokens=12).choices[0].message.content
    chunks = list(client.chat.completions.create(model=REPO, messages=CHAT, max_tokens=12, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_forecast_uses_the_validators_prompt(server):
    client, served, _ = server
    out = client.post("/forecast", cast_to=object, body={"asset": "eth", "horizon_days": 7, "cutoff": "2024-05-10"})
    question = build_question(SOURCE, CORTEX_TINY, "ETH", 7, "2024-05-10")
    assert out["prompt"] == question.messages
    assert (out["asset"], out["horizon_days"], out["cutoff"]) == ("ETH", 7, "2024-05-10")
    assert out["market"]["synthetic"] is True and out["market"]["cutoff"] == "2024-05-10"
    assert out["model"] == {"repo": REPO, "revision": served.ref.revision}
    expected = forecast_answer(question, out["completion"], CORTEX_TINY)
    assert (out["forecast"], out["parse_error"]) == (expected["forecast"], expected["parse_error"])
    assert out["forecast"] is None and out["parse_error"]  # a random base answers nothing in format


def test_forecast_answer_parses_a_well_formed_completion():
    question = build_question(SOURCE, CORTEX_TINY, "BTC", 1, "2024-03-01")
    text = ('<think>Momentum is up.</think><answer>{"asset": "BTC", "horizon_days": 1, "direction": "up", '
            '"p_up": 0.62, "return_pct": 0.8}</answer>')
    out = forecast_answer(question, text, CORTEX_TINY)
    assert out["forecast"] == {"asset": "BTC", "horizon_days": 1, "direction": "up", "p_up": 0.62, "return_pct": 0.8}
    assert out["reasoning"] == "Momentum is up." and out["parse_error"] is None
    wrong = forecast_answer(question, text.replace('"horizon_days": 1', '"horizon_days": 7'), CORTEX_TINY)
    assert wrong["forecast"] is None and "horizon_days" in wrong["parse_error"]


def test_bad_input_one_clear_error_each_and_the_server_keeps_serving(server):
    client, _, url = server
    cases = {
        "unknown asset": lambda: client.post("/forecast", cast_to=object, body={"asset": "XYZ", "horizon_days": 7}),
        "unknown horizon": lambda: client.post("/forecast", cast_to=object, body={"asset": "BTC", "horizon_days": 5}),
        "prompt too long": lambda: client.chat.completions.create(
            model=REPO, messages=[{"role": "user", "content": "9 " * 5000}], max_tokens=4),
        "max_tokens": lambda: client.chat.completions.create(model=REPO, messages=CHAT, max_tokens=100000),
        "bad role": lambda: client.chat.completions.create(model=REPO, messages=[{"role": "tool", "content": "x"}]),
    }
    expected = {"unknown asset": "unknown asset 'XYZ'", "unknown horizon": "unknown horizon_days '5'",
                "prompt too long": "this server takes at most 1500", "max_tokens": "exceeds this server's limit of 64",
                "bad role": "chat template refused"}
    for name, call in cases.items():
        with pytest.raises(openai.BadRequestError) as err:
            call()
        assert expected[name] in err.value.body["message"], name
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="someone/else", messages=CHAT)
    raw = httpx.post(f"{url}/v1/forecast", content=b'{"asset": "BTC",', headers={"content-type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["message"].startswith("malformed JSON body")
    missing = httpx.post(f"{url}/v1/forecast", json={"asset": "BTC"})
    assert missing.status_code == 400 and missing.json()["error"] == {
        "message": "horizon_days: Field required", "type": "invalid_request_error", "code": "invalid_body"}
    huge = httpx.post(f"{url}/v1/chat/completions", content=b"x" * (40 << 10), headers={"content-type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert client.chat.completions.create(model=REPO, messages=CHAT, max_tokens=2).choices[0].message.content is not None
    metrics = httpx.get(f"{url}/metrics").text
    assert 'cortex_serve_requests_total{endpoint="/v1/forecast",status="400"}' in metrics
    assert "cortex_serve_generated_tokens_total" in metrics


def test_requests_over_the_in_flight_limit_are_refused(bases):
    ref = local_base(bases[0], REPO)
    app = create_app(Served(Engine.load(ref.path, ref.revision, device="cpu"), ref), CORTEX_TINY, SOURCE,
                     limits=Limits(max_in_flight=0))
    with TestClient(app) as http:
        r = http.post("/v1/chat/completions", json={"model": REPO, "messages": CHAT, "max_tokens": 2})
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"


def test_swap_finishes_queued_requests_on_the_old_base(bases):
    a, b = local_base(bases[0], REPO), local_base(bases[1], REPO)
    served = Served(Engine.load(a.path, a.revision, device="cpu"), a)
    expected = {p: Generator.load(p, device="cpu", max_new_tokens=6).generate([CHAT])[0][0] for p in bases}

    async def scenario():
        old, _ = served.current()
        ids = old.prompt_ids(CHAT)
        queued = [asyncio.ensure_future(old.complete(CHAT, ids, 6)) for _ in range(3)]
        await asyncio.sleep(0)
        served.swap(Engine.load(b.path, b.revision, device="cpu"), b)  # the old engine closes after its queue
        new, _ = served.current()
        fresh = await new.complete(CHAT, new.prompt_ids(CHAT), 6)
        return [await q for q in queued], fresh

    done, fresh = asyncio.run(scenario())
    assert [c.text for c in done] == [expected[bases[0]]] * 3
    assert fresh.text == expected[bases[1]] and served.current()[1].revision == b.revision


def test_follower_refuses_a_bad_hash_and_a_missing_folder_and_keeps_serving(bases, tmp_path):
    """Each refusal is one clear line on /health while the old base answers over HTTP; then the good base swaps in."""
    store = LocalStore(tmp_path / "store")
    revision = store.upload(REPO, bases[1], private=False, message="b")
    hotkey = "5F" + "a" * 46
    good = ModelCommitment.for_content("cortex-tiny", REPO, revision, model_hash(bases[1]), hotkey, kind="base")
    bad = ModelCommitment.for_content("cortex-tiny", REPO, revision, "0" * 64, hotkey, kind="base")
    a = local_base(bases[0], REPO)
    served = Served(Engine.load(a.path, a.revision, device="cpu"), a)
    pointer = {"ref": BaseRef(REPO, revision, 10, hotkey, bad)}

    def load(path, name):
        return Engine.load(path, name, device="cpu")

    def fetch(r):
        return replace(r, path=tmp_path / "vanished") if fetch.gone else r.fetch(store, tmp_path / "cache")

    fetch.gone = False
    follower = Follower(served, lambda: pointer["ref"], fetch, load)
    app = create_app(served, CORTEX_TINY, SOURCE, follower=follower)

    def answered_by(http) -> str:
        r = http.post("/v1/chat/completions", json={"model": REPO, "messages": CHAT, "max_tokens": 2})
        assert r.status_code == 200
        return r.json()["system_fingerprint"]

    with TestClient(app) as http:
        assert follower.refresh() is False
        health = http.get("/health").json()
        assert health["last_error"].startswith("CortexError: the base pointer's hash does not match")
        assert (health["revision"], answered_by(http)) == (a.revision, a.revision)

        pointer["ref"], fetch.gone = replace(pointer["ref"], commitment=good), True
        assert follower.refresh() is False
        health = http.get("/health").json()
        assert health["last_error"] == f"CortexError: no model folder at {tmp_path / 'vanished'}"
        assert (health["revision"], answered_by(http), follower.failures) == (a.revision, a.revision, 2)

        fetch.gone = False
        assert follower.refresh() is True
        health = http.get("/health").json()
        assert (health["revision"], health["swaps"], health["last_error"]) == (revision, 1, None)
        assert answered_by(http) == revision


def test_cli_refuses_a_pointer_that_fails_its_hash_check_and_a_revision_not_in_the_store(bases, tmp_path, capsys):
    """At start there is no old base to keep serving: each is one line and exit status 2."""
    from cortex.cli import main
    from cortex.model.pointer import commit_pointer

    from chainkit import NETUID, make_chain

    chain = make_chain(tmp_path)
    owner = chain.register("owner")
    store = LocalStore(tmp_path / "store")
    revision = store.upload(REPO, bases[0], private=False)
    commit_pointer(chain.sub, owner, NETUID, CORTEX_TINY, REPO, revision, bases[1])  # b's hash for a's files
    chain.advance(1)
    assert main(["serve", "--chain.path", str(tmp_path / "chain.db"), "--once", "BTC:7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"hash does not match {REPO}@{revision}'s files" in err[0]
    assert main(["serve", "--store", f"local:{tmp_path / 'store'}", "--revision", "f" * 64]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "f" * 12 in err[0]


def test_cli_refuses_a_missing_model_folder(tmp_path, capsys):
    from cortex.cli import main

    assert main(["serve", "--base", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model folder there" in err[0]


def test_cli_follows_the_chains_base_pointer(bases, tmp_path):
    """`cortex serve --chain.path`: the newest pointer's base, then the next one once it is committed."""
    import argparse

    from cortex.model.pointer import commit_pointer
    from cortex.serve.cli import build, register

    from chainkit import NETUID, make_chain

    chain = make_chain(tmp_path)
    owner = chain.register("owner")  # a hotkey commits only once registered on the subnet
    store = LocalStore(tmp_path / "store")  # the default store beside --chain.path
    first = store.upload(REPO, bases[0], private=False)
    commit_pointer(chain.sub, owner, NETUID, CORTEX_TINY, REPO, first, bases[0])
    chain.advance(1)
    parser = argparse.ArgumentParser()
    register(parser)
    args = parser.parse_args(["--chain.path", str(tmp_path / "chain.db"), "--device", "cpu", "--follow-interval", "3600"])
    app, follower = build(args)
    with TestClient(app) as http:
        assert http.get("/health").json()["revision"] == first
        assert follower.refresh() is False  # nothing new
        second = store.upload(REPO, bases[1], private=False)
        commit_pointer(chain.sub, owner, NETUID, CORTEX_TINY, REPO, second, bases[1])
        chain.advance(1)
        assert follower.refresh() is True
        health = http.get("/health").json()
        answer = http.post("/v1/chat/completions", json={"model": REPO, "messages": CHAT, "max_tokens": 3})
    assert (health["revision"], health["swaps"], health["last_error"]) == (second, 1, None)
    assert answer.status_code == 200 and answer.json()["system_fingerprint"] == second


def test_a_request_reaching_a_closed_base_goes_to_the_current_one(bases):
    """The race a swap opens: a request reads the old reference, the old base closes, then the request queues."""
    a, b = local_base(bases[0], REPO), local_base(bases[1], REPO)
    old, new = Engine.load(a.path, a.revision, device="cpu"), Engine.load(b.path, b.revision, device="cpu")
    old.close()
    reads = []

    class MidSwap(Served):
        def current(self):  # the first read still sees the old base, later reads the new one
            reads.append(1)
            return (old, a) if len(reads) == 1 else (new, b)

    with pytest.raises(EngineClosed):
        asyncio.run(_queue_on(old))
    app = create_app(MidSwap(new, b), CORTEX_TINY, SOURCE)
    reads.clear()
    with TestClient(app) as http:
        r = http.post("/v1/chat/completions", json={"model": REPO, "messages": CHAT, "max_tokens": 2, "stream": True})
    assert r.status_code == 200 and b.revision in r.text and r.text.rstrip().endswith("data: [DONE]")
    assert len(reads) == 2  # the read the closed base refused, the read that queued


async def _queue_on(engine: Engine):
    return await engine.complete(CHAT, engine.prompt_ids(CHAT), 2)


ANSWER = ('<think>Momentum is up.</think><answer>{"asset": "BTC", "horizon_days": 1, "direction": "up", '
          '"p_up": 0.62, "return_pct": 0.8}</answer>')


@pytest.fixture(scope="module")
def answering_base(bases, tmp_path_factory) -> Path:
    """Base a, fine-tuned (seconds) until greedy decoding answers every BTC 1-day prompt of May 2024 with ANSWER."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cortex.data import build_samples
    from cortex.model.pretrain import assistant_loss, collate, encode_chat

    tok, model = AutoTokenizer.from_pretrained(bases[0]), AutoModelForCausalLM.from_pretrained(bases[0])
    frames = SOURCE.load(["BTC"], "2024-01-01", "2024-06-30")
    prompts = [s.prompt for s in build_samples(frames, ["BTC"], [1], start="2024-05-01", end="2024-05-28")]
    chats = [encode_chat(tok, p + [{"role": "assistant", "content": ANSWER}], 2048) for p in prompts]
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(400):
        assistant_loss(model, collate([chats[(4 * step + k) % len(chats)] for k in range(4)], tok.pad_token_id)).backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 25 == 24 and all(a == ANSWER for a in Generator(model, tok, max_new_tokens=60, batch_size=8)
                                   .generate(prompts[::3])[0]):
            break
    else:
        raise AssertionError("400 steps did not teach the tiny base its one answer")
    out = tmp_path_factory.mktemp("answering") / "base"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_forecast_returns_the_parsed_forecast_and_its_reasoning(answering_base):
    ref = local_base(answering_base, REPO)
    app = create_app(Served(Engine.load(ref.path, ref.revision, device="cpu"), ref), CORTEX_TINY, SOURCE)
    with TestClient(app) as http:
        out = http.post("/v1/forecast", json={"asset": "BTC", "horizon_days": 1, "cutoff": "2024-05-13"}).json()
    assert out["forecast"] == {"asset": "BTC", "horizon_days": 1, "direction": "up", "p_up": 0.62, "return_pct": 0.8}
    assert out["reasoning"] == "Momentum is up." and out["parse_error"] is None and out["completion"] == ANSWER
    assert out["model"]["revision"] == ref.revision and out["usage"]["completion_tokens"] > 10
