"""``cortex base bootstrap``: a loadable, deterministic Hugging Face folder, published to the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from cortex.cli import main
from cortex.errors import CortexError
from cortex.hub.local import LocalStore
from cortex.eval.base import load_base
from cortex.eval.benchmark import load_questions
from cortex.model.bootstrap import QUESTIONS, REPORT, BootstrapConfig, bootstrap, publish
from cortex.model.tiny import TINY_REPO, TinyConfig
from cortex.protocol.competition import CORTEX_TINY
from cortex.protocol.hashing import content_hash
from cortex.reward import score

SMALL = TinyConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                   intermediate_size=64, max_position_embeddings=1024)


def small(out: Path, **kw) -> BootstrapConfig:
    """A bootstrap in seconds: a few months of synthetic data, a tiny model, a few steps."""
    args = dict(out=out, steps=4, batch_size=2, start="2024-06-01", stride=3, vocab_size=600, eval_prompts=2,
                max_new_tokens=8, model=SMALL, progress=False)
    return BootstrapConfig(**{**args, **kw})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("boot") / "tiny"
    return out, bootstrap(small(out))


def test_writes_a_standard_loadable_folder(built):
    out, report = built
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "README.md", REPORT} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=False)
    tok = AutoTokenizer.from_pretrained(out, trust_remote_code=False)
    prompt = [{"role": "system", "content": "You are Cortex."}, {"role": "user", "content": "BTC, 7 days?"}]
    ids = tok.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=5)
    text = tok.decode(generated[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert isinstance(text, str) and generated.shape[1] <= ids["input_ids"].shape[1] + 5
    card = (out / "README.md").read_text()
    assert "offline" in card and "SYNTHETIC" in card and TINY_REPO in card


def test_report(built):
    out, report = built
    on_disk = json.loads((out / REPORT).read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert report["parameters"] > 0 and report["tokenizer_size"] <= 600
    assert [p["step"] for p in report["loss_curve"]] == [4] and report["final_loss"] > 0
    check = report["format_check"]
    assert check["prompts"] == 2 and 0.0 <= check["parse_rate"] <= 1.0 and check["max_new_tokens"] == 8
    assert check["completion_tokens"]["max"] <= 8  # the check generates within its budget, nothing after
    assert report["data"]["synthetic"] and report["data"]["rows"]["train"] > 0
    assert report["token_lengths"]["prompt"]["max"] > report["token_lengths"]["prompt"]["min"] > 0
    assert set(report["seconds"]) >= {"data", "pretrain", "format_check", "total"}
    assert REPORT not in report["published_files"]
    assert report["revision"] == content_hash(out, report["published_files"])


def test_held_out_questions_are_kept_for_the_benchmark(built):
    """The format check's questions (with outcomes, without the teacher's answer) stay beside the model,
    unpublished: the averager's fixed benchmark in a local subnet."""
    out, report = built
    rows, digest = load_questions(out / QUESTIONS)
    assert len(rows) == report["format_check"]["prompts"] == 2 and len(digest) == 64
    assert all("messages" not in r and r["prompt"][-1]["role"] == "user" for r in rows)
    assert QUESTIONS not in report["published_files"]
    assert min(r["cutoff"] for r in rows) > report["data"]["split_plan"]["ranges"]["train"][1]


def test_the_command_prints_the_held_out_parse_rate(tmp_path, monkeypatch, capsys):
    import cortex.model.cli as cli

    # the command's own config, shrunk to the small model and data (the flags' values kept)
    monkeypatch.setattr(cli, "bootstrap", lambda cfg: bootstrap(small(cfg.out, eval_prompts=cfg.eval_prompts, steps=2)))
    assert main(["base", "bootstrap", "--out", str(tmp_path / "tiny"), "--eval-prompts", "3", "--no-progress"]) == 0
    check = json.loads((tmp_path / "tiny" / REPORT).read_text())["format_check"]
    printed = capsys.readouterr().out
    assert f"held-out format check: parse rate {check['parse_rate']:.2f} on 3 prompts within 8 new tokens" in printed


def test_same_seed_same_content_hash(built, tmp_path):
    _, report = built
    assert bootstrap(small(tmp_path / "again"))["revision"] == report["revision"]


def test_publish_then_load_base(built, tmp_path):
    out, report = built
    revision = publish(out, f"local:{tmp_path / 'store'}")
    assert revision == report["revision"]  # the local store's revision is the build's content hash
    store = LocalStore(tmp_path / "store")
    assert not store.is_private(TINY_REPO)
    assert REPORT not in {f.path for f in store.list_files(TINY_REPO, revision)}
    model, tok = load_base(CORTEX_TINY.base, store, revision=revision, cache_dir=tmp_path / "cache")
    row = {"asset": "BTC", "horizon_days": 7, "outcome_return": 0.01, "realized_vol": 0.05,
           "outcome_direction": "up", "prompt": [{"role": "user", "content": "BTC"}]}
    ids = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, return_dict=True, return_tensors="pt")
    text = tok.decode(model.generate(**ids, max_new_tokens=4)[0], skip_special_tokens=True)
    assert score(text, row).total == -1.0  # four tokens of a barely trained model do not parse


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CortexError, match="did not make"):
        bootstrap(small(tmp_path / "mine"))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_default_bootstrap_reports_its_parse_rate(tmp_path, capsys):
    """The shipped default (a few minutes on two cores): answers in format on held-out prompts."""
    out, store = tmp_path / "tiny", tmp_path / "store"
    assert main(["base", "bootstrap", "--out", str(out), "--store", f"local:{store}", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / REPORT).read_text())
    check = report["format_check"]
    print(f"parse rate {check['parse_rate']} on {check['prompts']} prompts, mean reward {check['mean_reward']}, "
          f"{report['seconds']['total']}s")
    assert check["prompts"] == 100 and check["max_new_tokens"] == CORTEX_TINY.eval.max_new_tokens
    assert f"parse rate {check['parse_rate']:.2f} on 100 prompts" in printed
    assert check["parse_rate"] >= 0.9  # the seeded, deterministic default (0.94); measured in docs/base-model.md
    assert report["loss_curve"][-1]["loss"] < report["loss_curve"][0]["loss"]
    assert f"published {TINY_REPO}@{report['revision']}" in printed
    model, _ = load_base(CORTEX_TINY.base, LocalStore(store), revision=report["revision"], cache_dir=tmp_path / "c")
    assert model.config.hidden_size == TinyConfig().hidden_size


def test_the_answer_block_and_ticker_tokens_weigh_more_in_the_loss():
    """Pre-training's weighted loss is the weighted mean of the per-token cross-entropy: labels from
    ``<answer>`` on weigh ``answer_weight``, ticker tokens ``name_weight`` on top."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from cortex.model.pretrain import IGNORE, assistant_loss

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
    ids = torch.tensor([[3, 4, 5, 9, 6, 7, 8, 2]])
    labels = torch.tensor([[IGNORE, IGNORE, 5, 9, 6, 7, 8, 2]])  # 9 is <answer>, 7 a ticker
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    plain = assistant_loss(model, batch)
    assert torch.allclose(assistant_loss(model, batch, answer_id=9, answer_weight=1.0), plain)
    logits = model(input_ids=ids).logits[0, :-1]
    ce = torch.nn.functional.cross_entropy(logits, labels[0, 1:], reduction="none", ignore_index=IGNORE)
    token_weights = torch.ones(16)
    token_weights[7] = 10.0
    w = torch.tensor([0, 1, 4, 4, 40, 4, 4], dtype=torch.float)  # next-token labels 5 9 6 7 8 2 after a masked one
    expected = (ce * w).sum() / w.sum()
    got = assistant_loss(model, batch, answer_id=9, answer_weight=4.0, token_weights=token_weights)
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(plain, ce[1:].mean(), atol=1e-6)


def test_a_share_of_the_training_chats_reasons_in_words(tmp_path):
    """The base is pre-trained on both of the analyst's styles (numbers cited, and in words), the same
    samples drawn with the seed; its tokenizer learns both vocabularies."""
    from cortex.model.bootstrap import _data, mix_styles

    def row(i: int, style: str) -> dict:
        return {"asset": "BTC", "cutoff": f"2024-01-{i:02d}", "horizon_days": 1, "messages": [style, i]}

    cited, words = [row(i, "cited") for i in range(1, 29)], [row(i, "words") for i in range(1, 29)]
    assert mix_styles(cited, words, 0.0, seed=0) == [r["messages"] for r in cited]
    assert mix_styles(cited, words, 1.0, seed=0) == [r["messages"] for r in words]
    mixed = mix_styles(cited, words[:-1], 0.5, seed=0)
    assert mixed == mix_styles(cited, words[:-1], 0.5, seed=0) != mix_styles(cited, words[:-1], 0.5, seed=1)
    assert all(m[1] == i for m, i in zip(mixed, range(1, 29)))  # each sample keeps its place
    assert 4 <= sum(m[0] == "words" for m in mixed) <= 24 and mixed[-1][0] == "cited"  # no words twin: cited

    _, train, _ = _data(small(tmp_path / "tiny", words_fraction=0.25))
    said = [chat[-1]["content"] for chat in train]
    plain = [text for text in said if " closed at " not in text]
    assert all(" moved higher " in t or " moved lower " in t or " moved flat " in t for t in plain)
    assert 0.1 <= len(plain) / len(said) <= 0.4


def test_the_genesis_reads_the_market_as_the_analyst_does_but_unsure_of_it(tmp_path):
    """By default every pre-training forecast moves 0.3 of the analyst's way from the training base rate (the
    analyst at strength 0.3); ``informed_horizons=()`` is blind (the base rate everywhere), ``(7,)`` blind at
    one day only, ``forecast_strength=1`` the analyst's own forecasts."""
    import re

    from cortex.model.bootstrap import _data

    def forecasts(**kw) -> dict[str, list[float]]:
        _, train, _ = _data(small(tmp_path / "x", start="2023-06-01", words_fraction=0.0, **kw))
        out: dict[str, list[float]] = {}
        for chat in train:
            answer = chat[-1]["content"].split("<answer>")[1]
            horizon = re.search(r'"horizon_days": (\d+)', answer).group(1)
            out.setdefault(horizon, []).append(float(re.search(r'"p_up": ([0-9.]+)', answer).group(1)))
        return out

    shipped, blind = forecasts(), forecasts(informed_horizons=())
    full, mixed = forecasts(forecast_strength=1.0), forecasts(informed_horizons=(7,))
    assert set(shipped) == set(blind) == set(full) == set(mixed) == {"1", "7"}
    assert all(len(set(values)) == 1 for values in blind.values()), blind
    for h in ("1", "7"):
        base = blind[h][0]
        spread_full = max(abs(p - base) for p in full[h])
        spread = max(abs(p - base) for p in shipped[h])
        if spread_full > 0.05:  # the analyst is informed at this horizon
            assert len(set(shipped[h])) > 5 and spread <= 0.3 * spread_full + 0.011, (h, spread, spread_full)
    assert max(len(set(v)) for v in full.values()) > 5
    assert set(mixed["1"]) == set(blind["1"]) and mixed["7"] == shipped["7"]  # blind at 1 day only
