"""GPTQ copies (``cortex.export.gptq``, llmcompressor): the tests' tiny base, fine-tuned here to answer BTC's
1-day question in the competition's format, exported at 4 and 8 bits by ``cortex export``; each copy is
compressed-tensors' ``pack-quantized`` format, loads back through transformers and still answers in format,
and the 8-bit weights sit on their quantization grid close to the originals."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from cortex.data.prompts import completion, format_answer
from cortex.errors import CortexError
from cortex.export.gptq import BITS, check, parse_bits, quantize
from cortex.export.run import ExportConfig, export
from cortex.model.pointer import local_base
from cortex.protocol.competition import CORTEX_TINY

from serve_fixtures import SOURCE, tiny_base

ANSWER = completion("Momentum is up.", format_answer("BTC", 1, 0.6, 1.5))
COMP = replace(CORTEX_TINY, eval=replace(CORTEX_TINY.eval, assets=("BTC",), horizons_days=(1,), max_new_tokens=48,
                                         batch_size=4))
LINEAR = "model.layers.{}.{}"
MODULES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")
STEPS = 120  # the learning rate decays to a tenth over these
STREAK = 2  # checks in a row (10 steps apart) that the answer is right everywhere: a margin for the 4-bit copy


def formatted_base(out: Path) -> Path:
    """The tests' tiny base fine-tuned until it answers BTC 1-day prompts from the whole synthetic history (the
    held-out days included) with ``ANSWER`` (greedy), three checks in a row, so a 4-bit copy still does."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cortex.data import build_samples
    from cortex.eval.prompts import prompt_ids
    from cortex.model.pretrain import assistant_loss, collate, encode_chat

    tiny_base(out, seed=0)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    frames = SOURCE.load(["BTC"])
    days = frames["BTC"].index
    samples = build_samples(frames, ["BTC"], [1], start=str(days[60].date()), end=str(days[-2].date()), stride=9)
    chats = [encode_chat(tokenizer, s.prompt + [{"role": "assistant", "content": ANSWER}], 2048) for s in samples]
    checks = [torch.tensor([prompt_ids(tokenizer, samples[i].prompt)]) for i in (0, len(samples) // 2, -2, -1)]
    target = len(tokenizer(ANSWER, add_special_tokens=False)["input_ids"]) + 2
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    decay = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.1, total_iters=STEPS)  # settles rather than oscillates

    def answers() -> bool:
        news = [model.generate(ids, max_new_tokens=target, do_sample=False)[0, ids.shape[1]:] for ids in checks]
        return all(tokenizer.decode(new, skip_special_tokens=True) == ANSWER for new in news)

    streak = 0
    for step in range(2 * STEPS):
        pick = torch.randperm(len(chats))[:2].tolist()
        assistant_loss(model, collate([chats[i] for i in pick], tokenizer.pad_token_id)).backward()
        optimizer.step()
        optimizer.zero_grad()
        decay.step()
        if step >= 39 and step % 10 == 9:
            streak = streak + 1 if answers() else 0
            if streak == STREAK:
                break
    else:
        raise AssertionError(f"the tiny base did not learn the formatted answer in {2 * STEPS} steps")
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("gptq")
    base = formatted_base(root / "base")
    ref = local_base(base, COMP.base.repo)
    cfg = ExportConfig(root / "out", (), questions=2, gptq=(4, 8), gptq_calibration=4)
    return base, root / "out", export(base, ref, None, COMP, cfg)


def _linear_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every quantized Linear's weight as transformers loads it, decompressed for a quantized folder."""
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    config = json.loads((folder / "config.json").read_text())
    kwargs = {"quantization_config": CompressedTensorsConfig(dequantize=True)} if "quantization_config" in config else {}
    params = dict(AutoModelForCausalLM.from_pretrained(folder, **kwargs).named_parameters())
    return {name: params[f"{name}.weight"].detach() for name in
            (LINEAR.format(layer, m) for layer in range(2) for m in MODULES)}


def test_gptq_copies_are_reported_like_the_gguf_copies(exported):
    _, out, report = exported
    entries = {e["file"]: e for e in report["exports"]}
    assert set(entries) == {"hf/", "gptq/w4a16/", "gptq/w8a16/"}
    assert entries["hf/"]["parse_rate"] == 1.0  # the fine-tuned base answers every held-out question in format
    for name in ("gptq/w4a16/", "gptq/w8a16/"):
        e = entries[name]
        assert e["bytes"] == sum(p.stat().st_size for p in (out / name).iterdir()) > 0
        assert e["calibration_prompts"] == 4 and e["format"].startswith("gptq w")
        assert e["parse_rate"] == 1.0 and e["parse_rate_change"] == 0.0
        assert e["reward_change"] == pytest.approx(e["mean_reward"] - entries["hf/"]["mean_reward"])
        assert 0 <= e["same_answers"] <= report["questions"]
    assert entries["gptq/w8a16/"]["same_answers"] == report["questions"]
    assert json.loads((out / "export.json").read_text())["exports"] == report["exports"]
    assert "gptq/w4a16/" in (out / "hf" / "README.md").read_text()  # the card's table of copies


@pytest.mark.parametrize("bits", BITS)
def test_gptq_copy_is_compressed_tensors_and_answers_through_transformers(exported, bits):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cortex.data import build_samples
    from cortex.eval.prompts import prompt_ids
    from cortex.reward import parse_completion

    _, out, _ = exported
    folder = out / "gptq" / f"w{bits}a16"
    config = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["format"] == "pack-quantized"
    assert config["ignore"] == ["lm_head"]
    weights = config["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["type"], weights["symmetric"]) == (bits, "int", True)
    assert weights["strategy"] == "channel"  # the tiny base's widths (32, 64) are not multiples of 128
    with safe_open(folder / "model.safetensors", "pt") as f:
        names = set(f.keys())
        packed = f.get_tensor("model.layers.0.mlp.down_proj.weight_packed")
    assert "model.layers.0.mlp.down_proj.weight" not in names and packed.dtype == torch.int32
    assert packed.shape == (32, 64 * bits // 32)  # eight 4-bit or four 8-bit values per int32

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    sample = build_samples(SOURCE.load(["BTC"]), ["BTC"], [1], start="2024-02-01", end="2024-02-01")[0]
    ids = torch.tensor([prompt_ids(tokenizer, sample.prompt)])
    new = model.generate(ids, max_new_tokens=COMP.eval.max_new_tokens, do_sample=False)[0, ids.shape[1]:]
    parsed = parse_completion(tokenizer.decode(new, skip_special_tokens=True), "BTC", 1, COMP.reward)
    assert parsed.answer is not None and parsed.answer["p_up"] == pytest.approx(0.6)


def test_eight_bit_weights_are_close_and_on_their_grid(exported):
    from safetensors.torch import load_file

    base, out, _ = exported
    original, copy = _linear_weights(base), _linear_weights(out / "gptq" / "w8a16")
    stored = load_file(out / "gptq" / "w8a16" / "model.safetensors")
    for name, w in original.items():
        q = copy[name]
        assert not torch.equal(q, w), name  # quantized, not copied
        assert float((q - w).norm() / w.norm()) < 0.02, name  # 8 bits: well under 2% of the weight's norm
        steps = q / stored[f"{name}.weight_scale"]  # symmetric, one scale per output row: integers in [-128, 127]
        assert float((steps - steps.round()).abs().max()) < 1e-3 and float(steps.abs().max()) <= 128, name


def test_bad_input_is_one_clear_error(exported, tmp_path):
    base, _, _ = exported
    with pytest.raises(CortexError, match="GPTQ takes 4 or 8 bits, not 3"):
        parse_bits("4,3")
    with pytest.raises(CortexError, match="--gptq takes bit widths"):
        parse_bits("four")
    assert parse_bits(" 8, 4,8") == (8, 4) and parse_bits("") == ()
    with pytest.raises(CortexError, match="GPTQ takes 4 or 8 bits, not 3"):
        export(base, local_base(base, COMP.base.repo), None, COMP, ExportConfig(tmp_path / "out", (), gptq=(3,)))
    assert not (tmp_path / "out").exists()  # refused before any work
    with pytest.raises(CortexError, match="no config.json"):
        quantize(tmp_path / "missing", tmp_path / "q", 8, [[1, 2, 3]])
    with pytest.raises(CortexError, match="already exists"):
        quantize(base, base, 8, [[1, 2, 3]])


@pytest.mark.parametrize("flags, says", [(["--gptq", "3"], "GPTQ takes 4 or 8 bits, not 3"),
                                         (["--gptq", "8", "--gptq-calibration", "0"], "--gptq-calibration must be")])
def test_cli_refuses_bad_gptq_flags_in_one_line(tmp_path, capsys, flags, says):
    from cortex.cli import main

    assert main(["export", "--base", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not (tmp_path / "out").exists()


def test_widths_that_are_multiples_of_128_are_quantized_in_groups_of_128(exported, tmp_path):
    """The branch a real base takes (Llama 3.3 70B: 8192 and 28672 wide): one scale per 128 input columns."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    base, _, _ = exported
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=64)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "wide")
    tokenizer.save_pretrained(tmp_path / "wide")
    calibration = [list(range(3, 40)), list(range(50, 90))]
    folder = quantize(tmp_path / "wide", tmp_path / "q", 4, calibration)
    weights = json.loads((folder / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert (weights["strategy"], weights["group_size"], weights["num_bits"]) == ("group", 128, 4)
    stored = load_file(folder / "model.safetensors")
    assert stored["model.layers.0.mlp.down_proj.weight_scale"].shape == (128, 2)  # 256 input columns: two groups
    assert stored["model.layers.0.self_attn.q_proj.weight_scale"].shape == (128, 1)
    model = AutoModelForCausalLM.from_pretrained(folder)
    out = model.generate(torch.tensor([calibration[0]]), max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (1, len(calibration[0]) + 4)


def test_without_llmcompressor_asking_for_gptq_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "llmcompressor", None)  # what an import finds when it is not installed
    with pytest.raises(CortexError, match="make install"):
        check([4])
    assert check([]) is None  # no GPTQ asked for: nothing needed


def test_without_questions_a_gptq_copy_is_written_and_sized_not_scored(exported, tmp_path):
    base, _, _ = exported
    cfg = ExportConfig(tmp_path / "out", (), questions=0, gptq=(8,), gptq_calibration=2)
    entry = export(base, local_base(base, COMP.base.repo), None, COMP, cfg)["exports"][-1]
    assert entry["file"] == "gptq/w8a16/" and entry["calibration_prompts"] == 2
    assert entry["bytes"] == sum(p.stat().st_size for p in (tmp_path / "out" / "gptq" / "w8a16").iterdir())
    assert entry["mean_reward"] is None and entry["reward_change"] is None and entry["same_answers"] is None
