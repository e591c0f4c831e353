"""The miner on real chat templates: Llama 3.1/3.3, Qwen2.5 and Mistral (tests/data/chat_templates).

Each family gets a tiny random base of its architecture (Llama, Qwen2, Mistral) with its special
tokens and its real template, which has no ``{% generation %}`` markers. For each:

- the collated labels of an SFT row cover exactly the assistant's answer and its end-of-turn token,
  and the masked part is the prompt exactly as generation renders it (Mistral's template drops the
  system prompt when an answer follows: the training context must still hold it); KTO's rows split
  the same way;
- the miner's offline run (``neurons/miner.py --offline --base DIR``) trains a LoRA adapter and
  saves it, and the stock ``PeftModel.from_pretrained`` loads it on the base.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from cortex.adapter import LLAMA_TARGETS
from cortex.model.random_base import build_base
from miner.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from neurons.miner import main  # noqa: E402

TEMPLATES = ROOT / "tests" / "data" / "chat_templates"
# family -> (template file, the end-of-turn token, how the prompt's generation cue ends)
FAMILIES = {
    "llama3": ("llama3_1.jinja", "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "qwen2": ("qwen2_5.jinja", "<|im_end|>", "<|im_start|>assistant\n"),
    "mistral": ("mistral_nemo.jinja", "</s>", "[/INST]"),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A synthetic dataset and one tiny random base per family."""
    import datasets

    from cortex.data.dataset import BuildConfig, build_dataset

    root = tmp_path_factory.mktemp("templates")
    build_dataset(BuildConfig(source="synthetic", start="2024-03-01", stride=3, min_reward=None,
                              out=str(root / "data"), progress=False))
    dd = datasets.load_from_disk(str(root / "data"))
    texts = [m["content"] for row in dd["train"].select(range(40)) for m in row["messages"]]
    bases = {name: build_base(root / f"base-{name}", name, (TEMPLATES / f).read_text(), texts)
             for name, (f, _, _) in FAMILIES.items()}
    old = os.environ.get("CORTEX_PROGRESS")
    os.environ["CORTEX_PROGRESS"] = "0"
    yield root, dd, bases
    os.environ.pop("CORTEX_PROGRESS") if old is None else os.environ.__setitem__("CORTEX_PROGRESS", old)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_loss_covers_exactly_the_answer_and_its_end_of_turn(env, tmp_path, family):
    from transformers import AutoTokenizer
    from trl.chat_template_utils import has_generation_markers

    from miner.sft import make_trainer

    root, dd, bases = env
    _, eot, cue = FAMILIES[family]
    tokenizer = AutoTokenizer.from_pretrained(bases[family])
    assert not has_generation_markers(tokenizer.chat_template)  # as the real bases ship it
    rows = dd["train"].select(range(3))
    cfg = TrainConfig(finetuning_type="lora", lora_rank=4, max_steps=1, report_to="none", cutoff_len=4096)
    trainer = make_trainer(cfg, bases[family], rows, None, tmp_path, targets=["q_proj", "v_proj"])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    for i in range(3):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        real = batch["attention_mask"][i].bool() if "attention_mask" in batch else ids == ids
        trained = labels[real] != -100
        answer = rows[i]["messages"][-1]["content"]
        assert tokenizer.decode(labels[real][trained]) == answer.strip() + eot
        # the trained tokens are one block at the end; the rest is the prompt exactly as generation renders it
        n = int(trained.sum())
        assert trained[-n:].all() and not trained[:-n].any()
        prompt = tokenizer.decode(ids[real][:-n])
        expected = tokenizer.apply_chat_template(rows[i]["prompt"], add_generation_prompt=True, tokenize=False)
        assert prompt == expected and prompt.endswith(cue)
        assert rows[i]["prompt"][0]["content"].strip() in prompt  # the system prompt is in the context


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_loss_tail_lines_trains_the_conclusion_and_the_answer_only(env, tmp_path, family):
    """``loss_tail_lines: 2``: the collated labels cover the reasoning's last two lines, the answer and the
    end-of-turn token, one block at the end; the input ids are the same as with the whole completion."""
    from transformers import AutoTokenizer

    from miner.sft import make_trainer, tail_start

    root, dd, bases = env
    _, eot, _ = FAMILIES[family]
    tokenizer = AutoTokenizer.from_pretrained(bases[family])
    rows = dd["train"].select(range(3))
    cfg = TrainConfig(finetuning_type="lora", lora_rank=4, max_steps=1, report_to="none", cutoff_len=4096)
    whole = make_trainer(cfg, bases[family], rows, None, tmp_path / "a", targets=["q_proj", "v_proj"])
    tail = make_trainer(cfg.replace(loss_tail_lines=2), bases[family], rows, None, tmp_path / "b",
                        targets=["q_proj", "v_proj"])
    batches = [t.data_collator([t.train_dataset[i] for i in range(3)]) for t in (whole, tail)]
    assert batches[0]["input_ids"].equal(batches[1]["input_ids"])
    for i in range(3):
        ids = batches[1]["input_ids"][i]
        real = batches[1]["attention_mask"][i].bool() if "attention_mask" in batches[1] else ids == ids
        trained = (batches[1]["labels"][i] != -100)[real]
        n = int(trained.sum())
        assert 0 < n < int((batches[0]["labels"][i] != -100)[real].sum())
        assert trained[-n:].all() and not trained[:-n].any()
        answer = rows[i]["messages"][-1]["content"].strip()
        reasoning = answer.split("</think>")[0]
        expected = "\n".join(reasoning.splitlines()[-2:]) + answer[len(reasoning):] + eot
        assert tokenizer.decode(ids[real][-n:]).strip() == expected.strip()
    assert tail_start("a\nb\nc</think>x", 2) == 2 and tail_start("a\nb</think>x", 5) == 0
    assert tail_start("no think tag", 1) == 0 and tail_start("a\nb</think>", 0) == 0


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_kto_splits_prompt_and_answer_as_sft_does(env, tmp_path, family):
    from transformers import AutoTokenizer

    from miner.kto import make_trainer

    root, dd, bases = env
    _, eot, cue = FAMILIES[family]
    tokenizer = AutoTokenizer.from_pretrained(bases[family])
    rows = dd["train"].select(range(4))
    threshold = sorted(rows["teacher_reward"])[2]  # some desirable, some not
    cfg = TrainConfig(finetuning_type="lora", lora_rank=4, kto_max_steps=1, report_to="none", cutoff_len=4096,
                      kto_reward_threshold=threshold)
    trainer, good, total = make_trainer(cfg, bases[family], rows, tmp_path, targets=["q_proj", "v_proj"])
    assert 0 < good < total == 4
    for i, row in enumerate(trainer.train_dataset):
        source = rows[i]
        assert row["label"] == (source["teacher_reward"] >= threshold)
        prompt = tokenizer.apply_chat_template(source["prompt"], add_generation_prompt=True, tokenize=False)
        assert tokenizer.decode(row["prompt_ids"]) == prompt and prompt.endswith(cue)
        assert source["prompt"][0]["content"].strip() in prompt  # the system prompt is in the context
        assert tokenizer.decode(row["completion_ids"]) == source["messages"][-1]["content"].strip() + eot


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_offline_run_trains_and_saves_an_adapter_peft_loads(env, tmp_path, family):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, _, bases = env
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": str(root / "data"), "finetuning_type": "lora", "lora_rank": 8, "lora_alpha": 16,
        "learning_rate": 5.0e-3, "max_steps": 4, "per_device_train_batch_size": 2, "eval_steps": 2,
        "save_steps": 2, "logging_steps": 1, "val_size": 4, "heldout_samples": 2, "heldout_max_new_tokens": 8,
        "cutoff_len": 2048, "report_to": "none", "plot_loss": False, "seed": 1,
    }))
    out = tmp_path / "run"
    assert main(["--netuid", "1", "--offline", "--base", str(bases[family]), "--config", str(config),
                 "--output-dir", str(out), "--wandb.off"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["stages"]["sft"]["global_step"] == 4 and m["adapter_check"] == "ok" and m["adapter_type"] == "lora"
    assert m["train_loss_first"] > 0 and m["heldout_prompts"] == 2
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(bases[family]), str(out / "adapter"))
    assert sorted(model.peft_config["default"].target_modules) == sorted(LLAMA_TARGETS)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # trained: B starts at zero
