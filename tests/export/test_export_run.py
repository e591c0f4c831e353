"""`cortex export`: the lineage read back from the averager's manifests in a model store, the Hugging Face
folder with its card, and GGUF files read back with the `gguf` package's reader (and, where
`llama-cpp-python` is installed, answered by llama.cpp token for token as transformers answers)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from cortex.export.gguf import _permute, export_gguf
from cortex.export.lineage import MANIFEST, lineage, model_card
from cortex.export.run import ExportConfig, export
from cortex.hub.local import LocalStore
from cortex.model.pointer import local_base, model_hash
from cortex.protocol.competition import CORTEX_TINY
from cortex.protocol.rounds import GateResult, Manifest, ManifestInput

from serve_fixtures import tiny_base

REPO = CORTEX_TINY.base.repo
COMP = replace(CORTEX_TINY, eval=replace(CORTEX_TINY.eval, max_new_tokens=12, batch_size=4))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("export") / "base", seed=0)


def _merged(base: Path, out: Path, round_no: int, parent: str) -> Path:
    shutil.copytree(base, out)
    gate = GateResult(merged_reward=0.2 * round_no, base_reward=0.1, best_single_reward=0.15, best_single="m/a@1",
                      margin=0.0, passed=True, reason="", prompts=32)
    inputs = [ManifestInput(model=f"miner/m{round_no}@{'c' * 40}", uid=round_no, hotkey="5F" + "b" * 46, weight=1.0,
                            incentive=0.5, commit_block=10 * round_no, score=0.3)]
    Manifest(competition="cortex-tiny", round=round_no, parent=parent, method="exact", averager="5F" + "a" * 46,
             model_hash=model_hash(out), inputs=inputs, gate=gate).write(out / MANIFEST)
    return out


def test_lineage_follows_the_manifests_back_to_genesis(base, tmp_path):
    store = LocalStore(tmp_path / "store")
    genesis = store.upload(REPO, base, private=False)
    first = store.upload(REPO, _merged(base, tmp_path / "r1", 1, f"{REPO}@{genesis}"), private=False)
    second = store.upload(REPO, _merged(base, tmp_path / "r2", 2, f"{REPO}@{first}"), private=False)
    steps = lineage(store, REPO, second)
    assert [s["revision"] for s in steps] == [second, first, genesis]
    assert [s.get("round") for s in steps] == [2, 1, None] and steps[-1]["genesis"] is True
    assert steps[0]["parent"] == f"{REPO}@{first}" and steps[0]["gate"]["merged_reward"] == pytest.approx(0.4)
    assert steps[1]["inputs"][0]["model"] == f"miner/m1@{'c' * 40}"
    card = model_card(REPO, second, COMP, steps, [], [], "{{ x }}")
    assert f"round 2, exact merge into `{REPO}@{first}`" in card and "genesis" in card
    assert "<answer>" in card and "{{ x }}" in card
    # without a store the chain stops at the first parent, marked unknown rather than genesis
    alone = lineage(None, REPO, second, Manifest.read(tmp_path / "r2" / MANIFEST))
    assert [s["revision"] for s in alone] == [second, first] and alone[-1]["genesis"] is None


def test_gguf_holds_the_weights_and_the_tokenizer(base, tmp_path):
    import gguf
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    weights = load_file(base / "model.safetensors")
    for kind in ("f32", "q8_0"):
        reader = gguf.GGUFReader(export_gguf(base, tmp_path / f"m-{kind}.gguf", kind))
        tensors = {t.name: t for t in reader.tensors}
        assert len(tensors) == len(weights) - ("lm_head.weight" in weights)
        field = reader.fields["general.architecture"]
        assert bytes(field.parts[field.data[0]]).decode() == "llama"
        tokens = reader.fields["tokenizer.ggml.tokens"]
        assert len(tokens.data) == config.vocab_size
        assert bytes(tokens.parts[tokens.data[tokenizer.eos_token_id]]).decode() == tokenizer.eos_token
        q = gguf.quants.dequantize(tensors["blk.0.attn_q.weight"].data, tensors["blk.0.attn_q.weight"].tensor_type)
        q = q.reshape(weights["model.layers.0.self_attn.q_proj.weight"].shape)
        expected = _permute(weights["model.layers.0.self_attn.q_proj.weight"], config.num_attention_heads)
        emb = gguf.quants.dequantize(tensors["token_embd.weight"].data, tensors["token_embd.weight"].tensor_type)
        tol = 0 if kind == "f32" else 0.02
        assert np.allclose(q, expected, atol=tol) and not np.allclose(expected, weights[
            "model.layers.0.self_attn.q_proj.weight"])
        assert np.allclose(emb.reshape(-1), weights["model.embed_tokens.weight"].reshape(-1), atol=tol)


def test_export_writes_the_folder_card_and_report(base, tmp_path):
    ref = local_base(base, REPO)
    report = export(base, ref, None, COMP, ExportConfig(tmp_path / "out", ("f16",), questions=2))
    hf = tmp_path / "out" / "hf"
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "README.md"} <= {
        p.name for p in hf.iterdir()}
    card = (hf / "README.md").read_text()
    assert f"# {REPO} @ {ref.revision[:12]}" in card and "genesis" in card and "## Quantized copies" in card
    assert report["questions"] == 2 and report["lineage"][0]["genesis"] is True
    unquantized, f16 = report["exports"]
    assert unquantized["parse_rate_change"] == 0.0 and unquantized["mean_reward"] is not None
    assert f16["bytes"] == (tmp_path / "out" / f16["file"]).stat().st_size > 0
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        assert f16["not_scored"].startswith("llama-cpp-python is not installed")
    else:
        assert f16["same_answers"] == 2 and f16["reward_change"] == pytest.approx(0.0)
    with pytest.raises(Exception, match="not empty"):
        export(base, ref, None, COMP, ExportConfig(tmp_path / "out", ()))


def test_export_without_questions_writes_and_sizes_the_copies_and_scores_nothing(base, tmp_path):
    """``--questions 0`` (the quick export after the demo): no model is run, every figure is None, not 0."""
    ref = local_base(base, REPO)
    report = export(base, ref, None, COMP, ExportConfig(tmp_path / "out", ("q8_0",), questions=0))
    assert report["questions"] == 0 and [e["file"].split("/")[0] for e in report["exports"]] == ["hf", "gguf"]
    for e in report["exports"]:
        assert e["bytes"] > 0 and e["mean_reward"] is None and e["parse_rate"] is None and e["reward_change"] is None
        assert e.get("same_answers") is None
    assert (tmp_path / "out" / "hf" / "README.md").is_file()


def test_llama_cpp_answers_token_for_token(base, tmp_path):
    pytest.importorskip("llama_cpp")
    from cortex.eval.generate import Generator
    from cortex.export.run import greedy_gguf, held_out_rows

    rows = held_out_rows(COMP, None, 3)
    gen = Generator.load(base, device="cpu", max_new_tokens=12, batch_size=1)
    ids = gen.prompt_ids([r["prompt"] for r in rows])
    expected = []
    for prompt in ids:
        out = gen.model.generate(__import__("torch").tensor([prompt]), max_new_tokens=12, do_sample=False,
                                 pad_token_id=gen.tokenizer.pad_token_id)[0, len(prompt):].tolist()
        expected.append([t for t in out if t != gen.tokenizer.eos_token_id][:12])
    for kind in ("f32", "f16"):
        got = greedy_gguf(export_gguf(base, tmp_path / f"{kind}.gguf", kind), ids, 12, gen.tokenizer.eos_token_id)
        assert got == expected, kind


def test_q8_0_keeps_rows_that_are_not_whole_blocks_in_f16(base, tmp_path):
    """The cortex-tiny shape's MLP (688 wide) is no multiple of q8_0's 32-value blocks: those tensors go in as f16."""
    import gguf
    from transformers import AutoTokenizer

    from cortex.model.tiny import TinyConfig, build_model

    tok = AutoTokenizer.from_pretrained(base)
    cfg = TinyConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=48, max_position_embeddings=256)
    build_model(cfg, tok).save_pretrained(tmp_path / "odd")
    tok.save_pretrained(tmp_path / "odd")
    kinds = {t.name: t.tensor_type.name for t in gguf.GGUFReader(export_gguf(tmp_path / "odd", tmp_path / "o.gguf",
                                                                              "q8_0")).tensors}
    assert kinds["blk.0.ffn_down.weight"] == "F16"  # rows of 48
    assert kinds["blk.0.ffn_up.weight"] == kinds["blk.0.attn_q.weight"] == "Q8_0"  # rows of 32
    assert kinds["blk.0.attn_norm.weight"] == "F32"
