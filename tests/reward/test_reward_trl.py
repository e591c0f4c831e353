"""``grpo_reward`` as TRL sees it: the call signature, and one real GRPOTrainer step on CPU."""

from __future__ import annotations

import json
import pickle

import pytest
from test_reward import answer, completion, sample

from cortex.errors import CortexError
from cortex.reward import (
    GRPOReward,
    RewardConfig,
    completion_text,
    group_advantages,
    grpo_reward,
    make_grpo_reward,
    score,
)

OUTCOME_COLUMNS = ("asset", "cutoff", "horizon_days", "outcome_return", "outcome_direction",
                   "realized_vol")


def columns(rows):
    """Dataset rows as TRL passes them: one list per column, one value per completion."""
    return {k: [r[k] for r in rows] for k in OUTCOME_COLUMNS}


# ------------------------------------------------------------------ group advantages

def test_group_advantages_use_the_population_std():
    adv = group_advantages([1.0, 2.0, 3.0])
    std = (2 / 3) ** 0.5  # population: divide by n, not n - 1
    assert adv == pytest.approx([-1 / (std + 1e-4), 0.0, 1 / (std + 1e-4)])
    assert group_advantages([0.7, 0.7, 0.7]) == [0.0, 0.0, 0.0]
    assert group_advantages([]) == []
    assert group_advantages([-1.0, 1.0]) == pytest.approx([-1 / 1.0001, 1 / 1.0001])
    with pytest.raises(ValueError):
        group_advantages([0.0, float("nan")])


# ------------------------------------------------------------------ the TRL signature

def test_plain_and_conversational_completions():
    rows = [sample(), sample(outcome_return=-0.02, outcome_direction="down")]
    prompts = [r["messages"][:2] for r in rows]
    plain = [completion(), completion()]
    chat = [[{"role": "assistant", "content": c}] for c in plain]
    got_plain = grpo_reward(prompts=prompts, completions=plain, **columns(rows))
    got_chat = grpo_reward(prompts=prompts, completions=chat, **columns(rows))
    want = [score(c, {**r, "prompt": p}).total for c, r, p in zip(plain, rows, prompts)]
    assert got_plain == got_chat == want
    assert got_plain[0] > got_plain[1]  # same answer, opposite outcomes


def test_reasoning_split_off_by_a_response_parser_is_put_back():
    full = completion()
    reasoning, _, rest = full.partition("</think>")
    msg = {"role": "assistant", "content": rest, "reasoning_content": reasoning[len("<think>"):]}
    assert completion_text([msg]) == full
    assert completion_text({"role": "assistant", "content": full, "thinking": "x"}) == full
    assert completion_text([{"role": "assistant",
                             "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]) == "ab"
    assert completion_text(None) == "" and completion_text(42) == ""
    assert completion_text([{"role": "user", "content": "ignored"}]) == ""


def test_trl_extras_are_ignored_and_hooks_receive_metrics():
    rows = [sample(), sample()]
    metrics, extras = {}, {}
    rewards = grpo_reward(
        prompts=["p1", "p2"], completions=[completion(), "garbage"], completion_ids=[[1], [2]],
        trainer_state=object(), log_metric=metrics.__setitem__,
        log_extra=extras.__setitem__, **columns(rows))
    assert rewards[1] == RewardConfig().floor
    assert metrics["cortex_reward/parse_rate"] == 0.5
    assert extras["cortex_reward_parse_error"] == [None, "no <answer> block"]


def test_missing_outcome_columns_are_a_clear_error():
    with pytest.raises(CortexError, match="outcome_return"):
        grpo_reward(prompts=["p"], completions=[completion()], asset=["BTC"], horizon_days=[7],
                    realized_vol=[0.04])


def test_names_configs_and_pickling():
    assert grpo_reward.__name__ == "cortex_reward"
    assert pickle.loads(pickle.dumps(grpo_reward)) is grpo_reward
    strict = make_grpo_reward(RewardConfig(depth_max=0.0), name="cortex_strict")
    assert isinstance(strict, GRPOReward) and strict.__name__ == "cortex_strict"
    clone = pickle.loads(pickle.dumps(strict))
    assert clone.__name__ == "cortex_strict" and clone.config == strict.config
    rows = [sample()]
    default = grpo_reward(prompts=None, completions=[completion()], **columns(rows))[0]
    assert strict(prompts=None, completions=[completion()], **columns(rows))[0] < default


# ------------------------------------------------------------------ a real GRPOTrainer step

def tiny_tokenizer():
    """A byte-level BPE trained on a few strings, with a chat template: no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [completion(), json.dumps(answer()), "BTC daily data up to 2024-05-01"] * 4
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    fast.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}"
                          "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    return fast


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_grpo_reward_in_a_real_grpo_trainer_step(tmp_path):
    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    tok = tiny_tokenizer()
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    rows = []
    for i, (asset, ret) in enumerate([("BTC", 0.03), ("ETH", -0.02), ("SOL", 0.05), ("BTC", -0.01)]):
        rows.append({
            "prompt": [{"role": "system", "content": "Answer in <think></think><answer></answer>."},
                       {"role": "user", "content": f"{asset} daily data up to 2024-05-0{i + 1}"}],
            "asset": asset, "cutoff": f"2024-05-0{i + 1}", "horizon_days": 7,
            "outcome_return": ret, "outcome_direction": "up" if ret > 0 else "down",
            "realized_vol": 0.04})
    calls = []

    class Recording(GRPOReward):
        def __call__(self, prompts, completions, **kwargs):
            calls.append({"prompts": prompts, "completions": completions, **kwargs})
            return super().__call__(prompts, completions, **kwargs)

    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2,
        max_completion_length=8, max_steps=1, learning_rate=1e-4, logging_steps=1,
        report_to="none", use_cpu=True, save_strategy="no", seed=0, bf16=False,
        dataloader_num_workers=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=model, reward_funcs=[Recording()], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.train()

    assert calls, "the reward function was never called"
    call = calls[0]
    n = len(call["completions"])
    assert n == 4  # 2 prompts x 2 generations per step
    for column in OUTCOME_COLUMNS:
        assert len(call[column]) == n, column
    assert set(call["asset"]) <= {"BTC", "ETH", "SOL"}
    assert isinstance(call["completions"][0], list)  # conversational: a list of messages
    assert call["completions"][0][0]["role"] == "assistant"
    assert isinstance(call["prompts"][0], list)
    assert {"trainer_state", "log_metric", "log_extra", "completion_ids"} <= set(call)
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert logged and logged[0]["rewards/cortex_reward/mean"] == RewardConfig().floor
    assert logged[0]["cortex_reward/parse_rate"] == 0.0  # 8 random tokens never parse
