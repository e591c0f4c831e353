"""The streaming merge over a sharded safetensors model, its atomic output, and `cortex merge`."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

from averager import stream
from averager.cli import register
from averager.merge import merge_state_dict
from cortex.adapter import group_terms
from cortex.errors import CortexError
from cortex.protocol.hashing import content_hash
from cortex.protocol.rounds import MergeReport
from test_merge import base_state, load, make_adapter, make_base

SIDE_FILES = {"tokenizer.json": '{"version": "1.0"}', "tokenizer_config.json": '{"model_max_length": 64}',
              "special_tokens_map.json": "{}"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A tiny Llama saved as several bf16 shards with tokenizer files, and three adapters for it."""
    root = tmp_path_factory.mktemp("merge")
    base = make_base()
    bf16 = make_base().to(torch.bfloat16)
    bf16.save_pretrained(str(root / "base"), max_shard_size="100KB")
    for name, text in SIDE_FILES.items():
        (root / "base" / name).write_text(text)
    base.load_state_dict({k: v.float() for k, v in bf16.state_dict().items()})  # the base the adapters see
    make_adapter(base, root / "dora0", 1, dora=True)
    make_adapter(base, root / "dora1", 2, dora=True, r=8, alpha=4, targets=["q_proj", "k_proj"])
    make_adapter(base, root / "lora", 3, dora=False, r=2, alpha=4)
    return {"root": root, "base": base}


def weighted(setup, names=("dora0", "dora1", "lora"), weights=(0.5, 0.3, 0.2)):
    return [(load(setup["root"] / n, setup["base"]), w) for n, w in zip(names, weights)]


def test_streaming_merge_equals_the_in_memory_merge(setup, tmp_path):
    base_dir = setup["root"] / "base"
    assert len(list(base_dir.glob("*.safetensors"))) > 2
    adapters = weighted(setup)
    report = stream.merge_exact(base_dir, adapters, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    want = merge_state_dict(base_state(setup["base"]), group_terms(adapters))
    got = {}
    for shard in out.glob("*.safetensors"):
        got.update(load_file(str(shard)))
    assert got.keys() == want.keys() and all(v.dtype == torch.float32 for v in got.values())
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)
    for name, text in SIDE_FILES.items():
        assert (out / name).read_text() == text
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"
    model = LlamaForCausalLM.from_pretrained(str(out)).eval()
    reference = LlamaForCausalLM(model.config).eval()
    reference.load_state_dict(want)
    ids = torch.randint(0, 256, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits)
    assert report.method == "exact" and report.modules_merged == 10 and report.dtype == "float32"
    assert [(i.path, i.weight, i.use_dora) for i in report.inputs] == [
        (str(setup["root"] / n), w, n != "lora") for n, w in (("dora0", 0.5), ("dora1", 0.3), ("lora", 0.2))]
    assert report.base == str(base_dir) and report.content_hash == content_hash(out)
    assert not (out / "manifest.json").exists()  # a published base's manifest is the averager's round's to write


def test_same_dtype_keeps_the_base_dtype(setup, tmp_path):
    stream.merge_exact(setup["root"] / "base", weighted(setup), tmp_path / "out", dtype="same", progress=False)
    tensors = load_file(str(next((tmp_path / "out").glob("*.safetensors"))))
    assert all(v.dtype == torch.bfloat16 for v in tensors.values())
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"


def test_a_merge_killed_halfway_leaves_nothing(setup, tmp_path, monkeypatch):
    real, calls = stream.merge_weight, []

    def dies_on_the_sixth(W, terms):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt  # what a kill looks like from inside the loop
        return real(W, terms)

    monkeypatch.setattr(stream, "merge_weight", dies_on_the_sixth)
    with pytest.raises(KeyboardInterrupt):
        stream.merge_exact(setup["root"] / "base", weighted(setup), tmp_path / "out", progress=False)
    assert len(calls) == 6 and list(tmp_path.iterdir()) == []
    # a partial folder left by a harder kill (SIGKILL skips the cleanup) is removed by the next run
    (tmp_path / ".out.partial-stale").mkdir()
    (tmp_path / ".out.partial-stale" / "model-00001-of-00005.safetensors").write_bytes(b"half")
    monkeypatch.setattr(stream, "merge_weight", real)
    stream.merge_exact(setup["root"] / "base", weighted(setup), tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_existing_output_and_wrong_bases_are_refused_before_writing(setup, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(CortexError, match="already exists"):
        stream.merge_exact(setup["root"] / "base", weighted(setup), tmp_path / "out", progress=False)
    other = make_base()
    other.config.hidden_size, other.config.intermediate_size = 32, 64
    LlamaForCausalLM(other.config).save_pretrained(str(tmp_path / "small"))
    with pytest.raises(CortexError, match="do not fit"):
        stream.merge_exact(tmp_path / "small", weighted(setup), tmp_path / "out2", progress=False)
    assert not (tmp_path / "out2").exists()
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    (tmp_path / "small" / "config.json").write_text(json.dumps(config | {"quantization_config": {"bits": 4}}))
    with pytest.raises(CortexError, match="quantised"):
        stream.merge_exact(tmp_path / "small", weighted(setup), tmp_path / "out2", progress=False)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    register(parser)
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_exact_and_rank_r(setup, tmp_path, capsys):
    root = setup["root"]
    common = ["--base", str(root / "base"), "--adapter", str(root / "dora0"), "--weight", "0.6",
              "--adapter", str(root / "lora"), "--weight", "0.4", "--no-progress"]
    assert cli(*common, "--out", str(tmp_path / "exact")) == 0
    report = MergeReport.read(tmp_path / "exact" / "merge.json")
    assert f"content hash {report.content_hash}" in capsys.readouterr().out and report.method == "exact"
    assert report.content_hash == content_hash(tmp_path / "exact", [p.name for p in (tmp_path / "exact").iterdir()
                                                                      if p.name != "merge.json"])
    assert cli(*common, "--out", str(tmp_path / "rank"), "--method", "rank-r", "--rank", "6") == 0
    report = MergeReport.read(tmp_path / "rank" / "merge.json")
    assert report.method == "rank-r" and report.rank == 6
    assert all(0 < e <= 1 for e in report.energy.values()) and len(report.energy) == 8
    # the rank-r adapter is a standard peft adapter of the exact delta W' - W
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(str(root / "base"), dtype=torch.float32),
                                      str(tmp_path / "rank")).merge_and_unload()
    exact = LlamaForCausalLM.from_pretrained(str(tmp_path / "exact")).state_dict()
    base = base_state(setup["base"])
    for key, value in model.state_dict().items():
        module = key.removesuffix(".weight")
        error = float((value - exact[key]).norm()) ** 2
        dropped = 1 - report.energy.get(module, 1.0)
        assert error == pytest.approx(dropped * float((exact[key] - base[key]).norm()) ** 2, rel=1e-3, abs=1e-9)


def test_cli_refuses_bad_arguments(setup, tmp_path):
    root = setup["root"]
    with pytest.raises(CortexError, match="--weight"):
        cli("--base", str(root / "base"), "--adapter", str(root / "lora"), "--out", str(tmp_path / "o"),
            "--weight", "0.5", "--weight", "0.5")
    with pytest.raises(CortexError, match="--rank"):
        cli("--base", str(root / "base"), "--adapter", str(root / "lora"), "--weight", "1",
            "--out", str(tmp_path / "o"), "--method", "rank-r")
    assert not (tmp_path / "o").exists()


def test_cortex_merge_command(setup, tmp_path, capsys):
    """`cortex merge` (registered through the cortex.commands entry point): errors print one line, exit 2."""
    import cortex.cli

    assert "merge" in {name for name, _, _ in cortex.cli.areas()}
    root = setup["root"]
    argv = ["merge", "--base", str(root / "base"), "--adapter", str(root / "dora0"), "--weight", "1",
            "--no-progress"]
    assert cortex.cli.main(argv + ["--out", str(tmp_path / "out")]) == 0
    assert cortex.cli.main(argv + ["--out", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
