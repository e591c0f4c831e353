"""The ``cortex-tiny`` base built from nothing, offline, in minutes (``cortex base bootstrap``).

Market data (synthetic by default) → the dataset of :mod:`cortex.data` → a BPE tokenizer trained
on its chats → a seeded tiny Llama → brief full fine-tuning on the training split's chats → a
greedy format check on held-out prompts → a standard Hugging Face model folder, published to the
model store as ``cortex/tiny-llama`` when ``--store`` is given. Everything published is a
function of the seed, the source and the code; timings go to ``bootstrap.json`` only, which is
never published, so the revision (a content hash) repeats when the build does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from cortex import workdir
from cortex.errors import CortexError
from cortex.model.tiny import TINY_REPO, TinyConfig

log = logging.getLogger(__name__)
REPORT = "bootstrap.json"  # measurements, kept beside the model but never published
QUESTIONS = "heldout.jsonl"  # the format check's held-out questions with their outcomes (never published)
HELD_OUT = "test"  # the split the format check draws its prompts from: the latest, after every training cutoff
# `--out` is replaced whole by each bootstrap: only a folder a bootstrap made (its marker, or its report)
OWNER = workdir.Owner("cortex base bootstrap", "--out", legacy=(REPORT,))


@dataclass(frozen=True)
class BootstrapConfig:
    out: Path
    source: str = "synthetic"
    seed: int = 0
    steps: int = 640
    batch_size: int = 4
    learning_rate: float = 3e-3
    stride: int = 2  # every 2nd day as a cutoff: half the data build, the same years and regimes
    start: str | None = None  # first cutoff day (default: the source's whole history)
    end: str | None = None
    relabel_fraction: float = 0.5  # of the training chats (BTC's too) renamed to another ticker
    # Share of the training chats whose reasoning is the analyst's in words (teacher ``analyst-words``:
    # directions instead of numbers). The base learns both styles and its tokenizer both vocabularies, as a
    # real base knows many; it answers in the majority style (numbers cited), which a base this small copies
    # poorly, so a miner has something to find within a few steps: reasoning that invents no numbers.
    words_fraction: float = 0.25
    # The genesis' forecasts (issue 22). At ``informed_horizons`` each pre-training forecast moves only
    # ``forecast_strength`` of the analyst's way from the training base rate: the base reads the market as the
    # analyst does but is unsure of it, so a miner's SFT on the analyst's own traces is a small step from what it
    # writes, and what the merged base gains on the fixed benchmark the miners brought. At other horizons the
    # forecast is the base rate. A blind genesis (() or strength 0) is near-certain of its one conclusion per
    # horizon, and 48 adapter steps on the analyst's traces broke its format (docs/localnet.md).
    informed_horizons: tuple[int, ...] = (1, 7)
    forecast_strength: float = 0.3
    answer_weight: float = 4.0  # loss weight of the answer block's tokens against the reasoning's
    name_weight: float = 10.0  # loss weight of ticker tokens (the asset the answer must copy from the prompt)
    # Share of the steps over which the prompt context grows from its last 32 tokens to all of it: early
    # steps see the question line (asset, horizon) but not the prices, so the model learns to copy the asset
    # named there instead of guessing it from the price level (the synthetic SOL and NEAR overlap).
    context_warmup: float = 0.5
    vocab_size: int = 4096
    eval_prompts: int = 100
    max_new_tokens: int | None = None  # the format check's budget (default: the competition's max_new_tokens)
    threads: int = 2
    model: TinyConfig = field(default_factory=TinyConfig)
    progress: bool = True
    force: bool = False  # replace an --out folder that a bootstrap did not make (its files are deleted)


def _data(cfg: BootstrapConfig) -> tuple[dict, list[list[dict]], list[dict]]:
    """(data card, training chats, held-out rows) from a dataset built in a temporary folder.

    A ``words_fraction`` of the training chats reason in words (the ``analyst-words`` teacher on the same
    samples), then a ``relabel_fraction`` of them name another ticker (:func:`relabel_assets`). Both teachers
    forecast ``cfg.forecast_strength`` of the analyst's way from the base rate at ``cfg.informed_horizons``,
    the base rate at any other."""
    import datasets

    from cortex.data.dataset import BuildConfig, build_dataset
    from cortex.data.teachers import AnalystTeacher
    from cortex.model.pretrain import relabel_assets

    with tempfile.TemporaryDirectory(prefix="cortex-base-data-") as tmp:
        build = BuildConfig(source=cfg.source, seed=cfg.seed, stride=cfg.stride, start=cfg.start, end=cfg.end,
                            out=f"{tmp}/data", progress=cfg.progress)
        blind = tuple(h for h in build.horizons if h not in cfg.informed_horizons)
        card = build_dataset(build, teacher=AnalystTeacher(blind=blind, strength=cfg.forecast_strength))
        splits = datasets.load_from_disk(f"{tmp}/data")
        chats = splits["train"]["messages"]
        if cfg.words_fraction > 0:
            words = AnalystTeacher(words=True, blind=blind, strength=cfg.forecast_strength)
            build_dataset(dataclasses.replace(build, out=f"{tmp}/words"), teacher=words)
            chats = mix_styles(splits["train"], datasets.load_from_disk(f"{tmp}/words")["train"], cfg.words_fraction,
                               cfg.seed)
        train = relabel_assets(chats, splits["train"]["asset"], cfg.relabel_fraction, cfg.seed, include_btc=True)
        held = [dict(row) for row in splits[HELD_OUT]]
    if not train or not held:
        raise CortexError(f"the {cfg.source} data gave {len(train)} training and {len(held)} held-out rows: "
                          "use a source with more history")
    return card, train, held


def mix_styles(cited: Sequence[Mapping[str, Any]], words: Sequence[Mapping[str, Any]], fraction: float,
               seed: int) -> list[list[dict]]:
    """``cited``'s chats with a ``fraction`` of them (drawn with ``seed``) taking the words-style chat of
    the same sample (asset, cutoff, horizon), where ``words`` has one."""
    def key(row: Mapping[str, Any]) -> tuple:
        return row["asset"], row["cutoff"], row["horizon_days"]

    other = {key(row): row["messages"] for row in words}
    rng = random.Random(f"words-{seed}")
    return [other.get(key(row), row["messages"]) if rng.random() < fraction else row["messages"] for row in cited]


def spread(rows: list[dict], n: int) -> list[dict]:
    """``n`` rows evenly spaced through ``rows`` (time-ordered: early and late prompts alike)."""
    n = min(n, len(rows))
    return [rows[(i * len(rows)) // n] for i in range(n)]


def _data_summary(card: dict) -> dict[str, Any]:
    keep = ("source", "synthetic", "data", "assets", "horizons", "seed", "split_plan", "teacher_pass_rate")
    out = {k: card.get(k) for k in keep}
    out["teacher"] = card.get("teacher", {}).get("name")
    out["rows"] = {name: split["rows"] for name, split in card.get("splits", {}).items()}
    return out


def model_card(cfg: BootstrapConfig, facts: dict[str, Any]) -> str:
    """The README: what this base is, how it was made, and what it is not."""
    data, check, arch = facts["data"], facts["format_check"], facts["architecture"]
    label = "SYNTHETIC market data (a seeded simulation, not real prices)" if data["synthetic"] else "real market data"
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [cortex, tiny, offline, synthetic-data]
---

# {TINY_REPO}: the tiny offline Cortex base

A **tiny Llama-architecture model for offline use** (tests, demos, CPU-only runs of the Cortex
subnet). It is the base of the `cortex-tiny` competition; it is **not** a capable forecaster.
Built by `cortex base bootstrap --seed {cfg.seed} --source {cfg.source} --steps {cfg.steps}` from
{label}, with the offline `{data['teacher']}` teacher's reasoning traces.

| | |
| --- | --- |
| architecture | `LlamaForCausalLM`: hidden {arch['hidden_size']}, {arch['num_hidden_layers']} layers, {arch['num_attention_heads']} heads ({arch['num_key_value_heads']} KV), MLP {arch['intermediate_size']}, context {arch['max_position_embeddings']}, tied embeddings |
| parameters | {facts['parameters']:,} |
| tokenizer | byte-level BPE, {facts['tokenizer_size']} tokens, trained on the dataset's chats; chat template with `{{% generation %}}` markers |
| pre-training | full fine-tuning, {cfg.steps} steps × {cfg.batch_size} chats, AdamW, peak lr {cfg.learning_rate}, loss on assistant tokens (the answer block weighted {cfg.answer_weight:g}×, tickers {cfg.name_weight:g}×), the prompt context growing from its last 32 tokens over the first {cfg.context_warmup:.0%} of the steps; {cfg.relabel_fraction:.0%} of the training chats renamed to another ticker, {cfg.words_fraction:.0%} reasoning in words (`analyst-words`); forecasts {cfg.forecast_strength:g} of the analyst's way from the training base rate at horizons {list(cfg.informed_horizons) or "none"} days, the base rate at any other |
| final training loss | {facts['final_loss']} |
| data | {data['source']}: assets {', '.join(data['assets'])}, horizons {data['horizons']} days, rows {data['rows']} |
| held-out format check | {check['prompts']} {HELD_OUT} prompts, greedy: parse rate {check['parse_rate']}, mean reward {check['mean_reward']} |

Answers are `<think>…</think><answer>{{json}}</answer>`. Load with
`AutoModelForCausalLM.from_pretrained(path)` and `AutoTokenizer.from_pretrained(path)` (no remote
code); generate from `tokenizer.apply_chat_template(messages, add_generation_prompt=True)`.
Real networks name a Hub base by repo and pinned revision instead (for example
`meta-llama/Llama-3.3-70B-Instruct`).
"""


def bootstrap(cfg: BootstrapConfig) -> dict[str, Any]:
    """Build, pre-train, check and save the tiny base into ``cfg.out``; returns the report."""
    import torch

    from cortex.eval.benchmark import write_questions
    from cortex.model.loading import is_model_file
    from cortex.model.pretrain import PretrainConfig, format_check, pretrain, token_lengths
    from cortex.model.tiny import build_model, parameter_count
    from cortex.model.tokenizer import chat_corpus, train_tokenizer
    from cortex.protocol.competition import CORTEX_TINY
    from cortex.protocol.hashing import content_hash

    out = workdir.check(cfg.out, OWNER, force=cfg.force)
    out.parent.mkdir(parents=True, exist_ok=True)
    started, seconds = time.time(), {}
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)

    log.info("building the %s dataset", cfg.source)
    card, train, held = _data(cfg)
    seconds["data"] = time.time() - started
    tokenizer = train_tokenizer(chat_corpus(train), cfg.vocab_size)
    model = build_model(cfg.model, tokenizer, cfg.seed)
    lengths = token_lengths(tokenizer, [row["messages"] for row in held])
    log.info("tokenizer: %d tokens; model: %s parameters; held-out prompts %s tokens", len(tokenizer),
             f"{parameter_count(model):,}", lengths["prompt"])
    seconds["tokenizer_and_init"] = time.time() - started - sum(seconds.values())

    train_cfg = PretrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                               warmup_steps=max(1, cfg.steps // 10), seed=cfg.seed, answer_weight=cfg.answer_weight,
                               name_weight=cfg.name_weight, context_warmup_steps=int(cfg.context_warmup * cfg.steps))
    curve = pretrain(model, tokenizer, train, train_cfg, progress=cfg.progress)
    seconds["pretrain"] = time.time() - started - sum(seconds.values())
    budget = cfg.max_new_tokens or CORTEX_TINY.eval.max_new_tokens
    questions = spread(held, cfg.eval_prompts)
    check = format_check(model, tokenizer, questions, budget, progress=cfg.progress)
    seconds["format_check"] = time.time() - started - sum(seconds.values())

    facts = {
        "repo": TINY_REPO,
        "parameters": parameter_count(model),
        "tokenizer_size": len(tokenizer),
        "architecture": asdict(cfg.model),
        "final_loss": curve[-1]["loss"] if curve else None,
        "data": _data_summary(card),
        "format_check": check,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(model_card(cfg, facts), encoding="utf-8")
        published = sorted(p.name for p in tmp.iterdir() if p.is_file())
        stray = [name for name in published if not is_model_file(name)]
        if stray:  # the store's download allow-list would drop them and the revision would not load
            raise CortexError(f"save_pretrained wrote files outside the base allow-list: {stray}")
        revision = content_hash(tmp)
        seconds["save"] = time.time() - started - sum(seconds.values())
        seconds["total"] = time.time() - started
        report = {
            **facts, "revision": revision, "published_files": published,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            "pretrain": asdict(train_cfg), "loss_curve": curve, "token_lengths": lengths,
            "competition_max_new_tokens": budget, "threads": cfg.threads, "deterministic_algorithms": True,
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
        }
        (tmp / REPORT).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        write_questions(questions, tmp / QUESTIONS)
        workdir.mark(tmp, OWNER)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def publish(folder: Path, store_spec: str, repo: str = TINY_REPO) -> str:
    """Upload the model files of a bootstrap folder (not its report) to the store; returns the revision."""
    from cortex.hub.store import open_store
    from cortex.model.loading import model_files

    folder = Path(folder)
    names = model_files(p.name for p in folder.iterdir() if p.is_file())
    store = open_store(store_spec)
    with tempfile.TemporaryDirectory(prefix="cortex-base-upload-") as tmp:
        for name in names:
            shutil.copyfile(folder / name, Path(tmp) / name)
        return store.upload(repo, Path(tmp), private=False, message="cortex base bootstrap")


