"""A small subnet for validator tests: a tiny base, honest adapters of known quality, bad ones.

How the honest adapters differ in quality. A tiny base trained for seconds cannot forecast, so
the three honest adapters are real peft LoRAs (rank 8, trained here on the base with a plain loop,
70 to 175 steps, seconds each) that answer every market prompt with the same well-formed
forecast and differ in their reasoning: ``strong`` argues in 22 words, ``medium`` in 10, ``weak``
in 3. The competition's reward (``cortex.reward`` with ``depth_min_tokens=2`` and
``depth_full_tokens=16``: depth credit grows from 2 novel reasoning words to full credit at 16)
then gives, on every prompt, the same accuracy to all three and depth credits of 0.5, 0.29 and
0.04: a real per-prompt quality ordering under the actual reward, with margins of 0.21 and 0.25
reward. ``train_lora`` keeps training until greedy decoding reproduces its text exactly on every
prompt of the weeks the tests evaluate, so the ordering the tests assert is known to hold. The
base answers nothing parseable (the floor, -1). ``copy`` is ``strong``'s files in another miner's
repo with its own correct salted hash, committed two blocks later.

The base is a ``cortex base bootstrap`` build (2 steps, 64 hidden, 2 layers) with an
initializer range of 0.15: a LoRA cannot change the tied embeddings or norms, and with the usual
0.02 the logits are so flat that no adapter can make one token clearly likelier than another.

Everything is built once per test session under the session's temporary folder.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import bittensor as bt
import numpy as np
import yaml
from safetensors.numpy import load_file, save_file

from cortex.hub.local import LocalStore
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import (
    AdapterLimits,
    BaseModelRef,
    Competition,
    CompetitionSchedule,
    EvalConfig,
    SkillConfig,
)
from cortex.protocol.hashing import content_hash
from cortex.reward import RewardConfig

sys.path.insert(0, str(Path(__file__).parent))
from chainkit import NETUID, LocalChain, make_chain

COMP = "cortex-test"
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj")  # down_proj is not allowed
TINY_REPO = "cortex/tiny-llama"  # cortex.model.tiny.TINY_REPO (not imported: transformers takes seconds)
BASE_MODEL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "max_position_embeddings": 1024, "initializer_range": 0.15}
START_DAY, BLOCKS_PER_DAY, TEMPO = "2024-03-01", 1, 10
ANSWER = '<answer>{"asset": "BTC", "horizon_days": 1, "direction": "up", "p_up": 0.6, "return_pct": 0.5}</answer>'
TEXTS = {  # no word repeats inside a text: a repeated context is where a tiny model loses its place
    "strong": "<think>Buyers held control all week while sellers faded into every dip. Rising volume confirms "
              "demand, volatility stays calm, so expect modest gains.</think>" + ANSWER,
    "medium": "<think>Buyers held control while sellers faded, so expect modest gains.</think>" + ANSWER,
    "weak": "<think>Buyers look stronger.</think>" + ANSWER,
}
# The longest text learns fastest at a higher rate; at 1.2e-2 it needs ~250 steps and its update
# grows past the checks' bound (twice the base weight's norm) on this nearly untrained base.
LEARNING_RATES = {"strong": 1.6e-2}
COMPETITION = Competition(
    id=COMP, description="validator tests",
    base=BaseModelRef(repo=TINY_REPO, builtin=True, follow_pointer=True),  # the subnet owner's pointer
    adapters=AdapterLimits(("lora", "dora"), 8, TARGETS, max_bytes=256 << 10),
    eval=EvalConfig(assets=("BTC",), horizons_days=(1,), prompts_per_round=6, eval_window_days=8,
                    eligibility_delay_blocks=0, max_new_tokens=150, batch_size=8, time_budget_s=300.0),
    reward=RewardConfig(depth_min_tokens=2, depth_full_tokens=16),
    scoring=SkillConfig(window_days=8, min_days=4, questions_per_day=1, confidence=0.9),
)
SCHEDULE = CompetitionSchedule((COMPETITION,))


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Tiny models run far faster on one thread (thread wake-ups cost more than the work)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- artifacts: the base, the honest adapters, the bad ones ------------------------------------

@dataclass
class Artifacts:
    base: Path
    honest: dict[str, Path]
    bad: dict[str, tuple[Path, str]]  # name → (folder, the reason code the validator must record)


def _prompts(start: str, end: str, stride: int) -> list[list[dict]]:
    from cortex.data import build_samples, get_source

    frames = get_source("synthetic").load(["BTC"], "2022-06-01", "2024-12-31")
    return [s.prompt for s in build_samples(frames, ["BTC"], [1], start=start, end=end, stride=stride)]


def train_lora(base: Path, text: str, out: Path, *, steps: int = 70, more: int = 35, most: int = 280,
               lr: float = 1.2e-2, seed: int = 0) -> Path:
    """A peft LoRA (rank 8) on ``base`` that answers any market prompt with ``text``.

    Trains ``steps`` steps, then ``more`` at a time until greedy decoding reproduces ``text``
    exactly on every BTC prompt of the weeks the tests evaluate (cutoffs 2024-03-05 to 2024-04-05,
    in batches of 6 as the validator runs them), and fails loudly if ``most`` steps are not enough.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cortex.eval.generate import Generator
    from cortex.model.pretrain import assistant_loss, collate, encode_chat

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=8, lora_alpha=16, target_modules=list(TARGETS), task_type="CAUSAL_LM"))
    chats = [encode_chat(tokenizer, p + [{"role": "assistant", "content": text}], 2048)
             for p in _prompts("2023-01-01", "2023-12-31", 7)]
    checks = _prompts("2024-03-05", "2024-04-05", 1)
    judge = Generator(AutoModelForCausalLM.from_pretrained(base), AutoTokenizer.from_pretrained(base),
                      max_new_tokens=COMPETITION.eval.max_new_tokens, batch_size=COMPETITION.eval.prompts_per_round)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    order, done, wrong = torch.Generator().manual_seed(seed), 0, len(checks)
    while done < most:
        for _ in range(steps if done == 0 else more):
            pick = torch.randperm(len(chats), generator=order)[:4].tolist()
            assistant_loss(model, collate([chats[i] for i in pick], tokenizer.pad_token_id)).backward()
            optimizer.step()
            optimizer.zero_grad()
            done += 1
        model.save_pretrained(out)
        wrong = sum(answer != text for answer in judge.generate(checks, out)[0])
        if wrong == 0:
            break
    if wrong:
        raise AssertionError(f"after {done} steps the adapter still garbles {wrong} of {len(checks)} prompts: "
                             f"{text[:40]!r}…")
    (out / "README.md").write_text(f"test adapter ({done} steps): {text[:40]}…\n")
    return out


def _variant(src: Path, out: Path, *, tensors=None, config=None, drop=(), extra=None) -> Path:
    """A copy of adapter ``src`` with its tensors or config changed, files dropped or added."""
    shutil.copytree(src, out)
    if tensors is not None:
        save_file(tensors(load_file(str(src / "adapter_model.safetensors"))), str(out / "adapter_model.safetensors"))
    if config is not None:
        cfg = json.loads((src / "adapter_config.json").read_text())
        config(cfg)
        (out / "adapter_config.json").write_text(json.dumps(cfg))
    for name in drop:
        (out / name).unlink()
    for name, data in (extra or {}).items():
        (out / name).write_bytes(data)
    return out


def _first(d: dict, part: str) -> str:
    return next(k for k in sorted(d) if part in k)


def _edit(part: str, fn):
    def edit(t):
        t[_first(t, part)] = fn(t[_first(t, part)])
        return t
    return edit


def _bad_adapters(src: Path, root: Path, base: Path) -> dict[str, tuple[Path, str]]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    def peft_adapter(name: str, **kw) -> Path:
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(task_type="CAUSAL_LM", **kw))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.01)
        model.save_pretrained(root / name)
        return root / name

    def nan(a):
        a = a.copy()
        a.flat[0] = np.nan
        return a

    def inf(a):
        a = a.copy()
        a.flat[3] = np.inf
        return a

    header = (src / "adapter_model.safetensors").read_bytes()
    broken = struct.pack("<Q", len(header) * 4) + header[8:]  # a header length that lies
    v = lambda name, **kw: _variant(src, root / name, **kw)
    return {
        "pickle": (v("pickle", extra={"adapter_model.bin": b"\x80\x04\x95" + b"\x00" * 64}), "pickle"),
        "nan": (v("nan", tensors=_edit("lora_B", nan)), "non_finite"),
        "inf": (v("inf", tensors=_edit("lora_A", inf)), "non_finite"),
        "wrong_shape": (v("wrong_shape", tensors=_edit("lora_A", lambda a: a[:, :32].copy())), "shape_mismatch"),
        "wrong_dtype": (v("wrong_dtype", tensors=lambda t: {k: a.astype(np.float64) for k, a in t.items()}), "dtype"),
        "rank_over_limit": (peft_adapter("rank_over_limit", r=16, lora_alpha=16, target_modules=["q_proj"]),
                            "rank_over_limit"),
        "target_not_allowed": (peft_adapter("target_not_allowed", r=4, lora_alpha=8, target_modules=["down_proj"]),
                               "target_not_allowed"),
        "lm_head": (v("lm_head", config=lambda c: c.update(modules_to_save=["lm_head"])), "replaces_embeddings"),
        "embeddings": (v("embeddings", config=lambda c: c.update(target_modules=list(TARGETS) + ["embed_tokens"])),
                       "replaces_embeddings"),
        "extra_files": (v("extra_files", extra={"tokenizer.json": b"{}"}), "extra_files"),
        "huge_file": (v("huge_file", extra={"README.md": b"x" * (300 << 10)}), "too_large"),
        "missing_config": (v("missing_config", drop=["adapter_config.json"]), "missing_config"),
        "missing_weights": (v("missing_weights", drop=["adapter_model.safetensors"]), "missing_weights"),
        "remote_code": (v("remote_code", config=lambda c: c.update(auto_mapping={"base_model_class": "Evil"})),
                        "remote_code"),
        "adds_trainable": (v("adds_trainable", config=lambda c: c.update(bias="all")), "adds_trainable"),
        "huge_norm": (v("huge_norm", tensors=_edit("lora_B", lambda a: a * 1e3 + 1.0)), "norm_too_large"),
        "bad_header": (v("bad_header", extra={"adapter_model.safetensors": broken}), "bad_header"),
    }


def build_artifacts(root: Path) -> Artifacts:
    """Build (or reuse, within a session) the base and every adapter under ``root``."""
    import torch

    from cortex.model.bootstrap import BootstrapConfig, bootstrap
    from cortex.model.tiny import TinyConfig

    done = root / "done.json"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        deterministic = torch.are_deterministic_algorithms_enabled()
        with torch_threads(1):
            bootstrap(BootstrapConfig(out=root / "base", steps=2, batch_size=2, start="2024-06-01", stride=3,
                                      vocab_size=1024, eval_prompts=1, max_new_tokens=4, model=TinyConfig(**BASE_MODEL),
                                      answer_weight=1.0, name_weight=1.0, context_warmup=0.0, words_fraction=0.0,
                                      progress=False, threads=1))  # one style: the texts were tuned on its tokenizer
            for name, text in TEXTS.items():
                train_lora(root / "base", text, root / "honest" / name, lr=LEARNING_RATES.get(name, 1.2e-2))
            bad = _bad_adapters(root / "honest" / "weak", root / "bad", root / "base")
        torch.use_deterministic_algorithms(deterministic)  # bootstrap turns it on for the whole process
        done.write_text(json.dumps({k: [str(p), r] for k, (p, r) in bad.items()}))
    bad = {k: (Path(p), r) for k, (p, r) in json.loads(done.read_text()).items()}
    return Artifacts(root / "base", {n: root / "honest" / n for n in TEXTS}, bad)


# --- the subnet --------------------------------------------------------------------------------

class CountingStore:
    """A LocalStore that counts downloads and can make repos vanish in the middle of a download."""

    def __init__(self, inner: LocalStore, vanish: set[str] = frozenset()):
        self.inner, self.vanish, self.downloads = inner, set(vanish), []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def download(self, repo_id, revision, dest, *, allow, max_bytes):
        self.downloads.append((repo_id, revision))
        if repo_id in self.vanish:
            (Path(dest) / "adapter_config.json").write_text("{\"partial")  # half a file has arrived …
            shutil.rmtree(self.inner.root / repo_id)  # … when the repo is deleted
        return self.inner.download(repo_id, revision, dest, allow=allow, max_bytes=max_bytes)


@dataclass
class Miner:
    name: str
    repo: str
    revision: str
    block: int
    expect: str | None  # the reason code it must get, None for an honest model


@dataclass
class World:
    chain: LocalChain
    store: LocalStore
    root: Path
    competitions_file: Path
    miners: dict[str, Miner] = field(default_factory=dict)
    validators: tuple[str, ...] = ("validator0", "validator1")

    def uid(self, name: str) -> int:
        return self.chain.uid(name)

    def hotkey(self, name: str) -> str:
        return self.chain.wallets[name].hotkey.ss58_address


def _commit(c: LocalChain, name: str, text: str) -> int:
    c.commit(name, text).raise_for_failure()
    return int(c.sub.identity.commitment(NETUID, c.wallets[name].hotkey.ss58_address).block)


def make_world(root: Path, art: Artifacts, *, bad: bool = True) -> World:
    """Owner (base pointer), honest miners, a later copy, bad miners, two staked validators.

    Blocks (one market day per block from 2024-03-01): everything is committed at blocks 0-3,
    ``late`` at block 22. The first round runs at block 25: sync block 20, newest closed day
    2024-03-21, question days 03-14 to 03-21 (one BTC question a day, 03-21's unresolved); the
    models of blocks 0-3 answer all of them, ``late`` none (not eligible until day 03-23 closes).
    """
    from cortex.model.bootstrap import publish

    c = make_chain(root, tempo=TEMPO, weights_rate_limit=5)
    store = LocalStore(root / "store")
    world = World(c, store, root, root / "competitions.yaml")
    world.competitions_file.write_text(yaml.safe_dump({"competitions": [COMPETITION.to_dict()]}))
    owner = c.register("owner")
    revision = publish(art.base, f"local:{store.root}")
    pointer = ModelCommitment.for_content(COMP, TINY_REPO, revision, revision, owner.hotkey.ss58_address, kind="base")
    _commit(c, "owner", pointer.encode())

    def miner(name: str, folder: Path, expect: str | None, *, text: str | None = None) -> Miner:
        wallet = c.register(name)
        repo = f"{name.replace('_', '-')}/cortex-lora"
        rev = store.upload(repo, folder, private=True)
        commitment = ModelCommitment.for_content(COMP, repo, rev, content_hash(folder), wallet.hotkey.ss58_address)
        block = _commit(c, name, text or commitment.encode())
        store.set_visibility(repo, private=False)
        world.miners[name] = Miner(name, repo, rev, block, expect)
        return world.miners[name]

    for name in ("strong", "medium", "weak"):
        miner(name, art.honest[name], None)
    for name in world.validators:
        c.register(name)
        c.sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=world.hotkey(name), amount_tao=100),
                      c.wallets[name]).raise_for_failure()
    c.advance(2)
    miner("copy", art.honest["strong"], None)  # the same files, its own repo and salted hash, later
    if bad:
        for name, (folder, reason) in sorted(art.bad.items()):
            miner(name, folder, reason)
        strong = world.miners["strong"]
        copied = c.sub.identity.commitment(NETUID, world.hotkey("strong")).data
        miner("hash_mismatch", art.honest["medium"], "hash_mismatch", text=copied)  # the string, not the files
        ghost = ModelCommitment.for_content(COMP, strong.repo, "ab" * 32, "cd" * 32, "anyone")  # no such revision
        miner("no_revision", art.honest["medium"], "revision_not_found", text=ghost.encode())
        miner("vanishing", art.honest["medium"], "revision_not_found")
        c.register("malformed")
        _commit(c, "malformed", "cx1:a:cortex-test:not a commitment")
        world.miners["malformed"] = Miner("malformed", "", "", 0, "malformed_commitment")
        other = ModelCommitment.for_content("cortex-70b", "other/model", "ef" * 32, "ef" * 32, "y")
        c.register("other_competition")
        _commit(c, "other_competition", other.encode())
        world.miners["other_competition"] = Miner("other_competition", "", "", 0, "inactive_competition")
    c.advance(22 - c.sub.block)
    miner("late", art.honest["weak"], "not_eligible")
    c.advance(25 - c.sub.block)
    return world
