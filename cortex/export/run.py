"""One export, top to bottom: the base's folder → a Hugging Face folder with its model card → GGUF copies,
each measured against the unquantized model on the same held-out questions.

The held-out questions are a benchmark file (``--questions``: ``cortex.eval.benchmark``'s format) or,
by default, ``questions`` resolved questions drawn from the last ``HELD_OUT_DAYS`` days the market source
has outcomes for. The unquantized model answers them with the validators' generator
(``cortex.eval.generate``); a GGUF copy answers through ``llama-cpp-python`` from the same prompt token
ids, greedily, up to the same budget; both are scored with the competition's reward. Without
``llama-cpp-python`` a GGUF copy is written and its size reported, and the report says it was not scored.

A GPTQ copy (``cortex.export.gptq``) is calibrated on ``gptq_calibration`` of the competition's prompts drawn
the same way from the ``HELD_OUT_DAYS`` days before the held-out window (a gap of the longest horizon between
them, so no held-out question calibrates its own copy), and answers through transformers like the unquantized
model.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

from cortex.atomic import write_text
from cortex.errors import CortexError
from cortex.export.gguf import export_gguf
from cortex.export.gptq import check as check_gptq
from cortex.export.gptq import quantize, scheme_name
from cortex.export.lineage import lineage, model_card, read_manifest
from cortex.hub.store import ModelStore
from cortex.model.pointer import BaseRef
from cortex.protocol.competition import Competition

log = logging.getLogger(__name__)
HELD_OUT_DAYS = 60
REPORT = "export.json"


@dataclass(frozen=True)
class ExportConfig:
    out: Path
    gguf: tuple[str, ...] = ("f16", "q8_0")
    questions_file: Path | None = None
    questions: int = 16  # drawn from the source when no file is given
    source: str | None = None
    state_dirs: tuple[Path, ...] = field(default_factory=tuple)  # averager rounds and validator ledgers
    device: str = "cpu"
    gptq: tuple[int, ...] = ()  # GPTQ bit widths (cortex.export.gptq.BITS)
    gptq_calibration: int = 32  # competition prompts the GPTQ copies are calibrated on


def held_out_rows(competition: Competition, source_spec: str | None, n: int, *, skip_days: int = 0,
                  salt: str = "cortex-export") -> list[dict]:
    """``n`` resolved questions of the competition's assets and horizons from the source's last days (before
    the last ``skip_days``), drawn with the seed ``salt``."""
    from cortex.data import build_samples, draw, get_source

    source = get_source(source_spec)
    assets, horizons = list(competition.eval.assets), list(competition.eval.horizons_days)
    frames = source.load(sorted(set(assets) | {"BTC"}))
    last = min(f.index[-1] for f in frames.values()) - timedelta(days=max(horizons) + skip_days)
    samples = build_samples(frames, assets, horizons, start=(last - timedelta(days=HELD_OUT_DAYS)).date().isoformat(),
                            end=last.date().isoformat(), source=source.name, synthetic=source.is_synthetic)
    if not samples:
        raise CortexError(f"no resolved questions in the {HELD_OUT_DAYS} days to {last.date()} of {source.name}")
    return [s.row() for s in draw(samples, n, salt)]


def score_rows(key: str, rows: Sequence[dict], completions: Sequence[str], competition: Competition) -> dict[str, Any]:
    """Mean reward, parse rate and Brier of ``completions`` to ``rows`` (``cortex.eval.benchmark.summarise``);
    None each without rows (``--questions 0``: copies written and sized, not scored)."""
    if not rows:
        return {"mean_reward": None, "parse_rate": None, "brier": None}
    from cortex.eval.benchmark import summarise
    from cortex.eval.generate import score_completions

    rewards, parts = score_completions(completions, rows, competition.reward)
    s = summarise(key, rows, rewards, parts, "")
    return {"mean_reward": s.mean_reward, "parse_rate": s.parse_rate, "brier": s.brier}


def answer_transformers(folder: Path, rows: Sequence[dict], competition: Competition, device: str) -> list[str]:
    if not rows:  # nothing to answer: the model is not loaded
        return []
    from cortex.eval.generate import Generator

    gen = Generator.load(folder, device=device, max_new_tokens=competition.eval.max_new_tokens,
                         batch_size=competition.eval.batch_size)
    return gen.generate([r["prompt"] for r in rows])[0]


def greedy_gguf(model_file: Path, prompts: Sequence[list[int]], max_new_tokens: int, eos: int | None,
                n_ctx: int = 2048) -> list[list[int]]:
    """Greedy new token ids from llama.cpp for each prompt's token ids (raises ImportError without llama-cpp-python)."""
    if not prompts:
        return []
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_file), n_ctx=n_ctx, verbose=False, seed=0)
    out = []
    for ids in prompts:
        llm.reset()
        new: list[int] = []
        for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            if token == eos or token == llm.token_eos():
                break
            new.append(int(token))
            if len(new) >= max_new_tokens:
                break
        out.append(new)
    return out


def export(folder: Path, ref: BaseRef, store: ModelStore | None, competition: Competition,
           cfg: ExportConfig) -> dict[str, Any]:
    """Write ``cfg.out``/hf (model files, manifest, card), ``cfg.out``/gguf and ``cfg.out``/gptq; returns the report."""
    from transformers import AutoTokenizer

    from cortex.eval.prompts import prompt_ids
    from cortex.model.loading import model_files

    check_gptq(cfg.gptq)
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CortexError(f"{out} exists and is not empty: choose a new folder for the export")
    hf = out / "hf"
    hf.mkdir(parents=True)
    names = [n for n in model_files(p.name for p in Path(folder).iterdir() if p.is_file()) if n != "README.md"]
    for name in names + (["manifest.json"] if (Path(folder) / "manifest.json").is_file() else []):
        shutil.copyfile(Path(folder) / name, hf / name)
    tokenizer = AutoTokenizer.from_pretrained(hf, trust_remote_code=False, local_files_only=True)

    steps = lineage(store, ref.repo, ref.revision, read_manifest(folder))
    benchmark, live = _records(str(ref), cfg.state_dirs, cfg.source)

    if cfg.questions_file is not None:
        from cortex.eval.benchmark import load_questions

        rows = load_questions(cfg.questions_file)[0]
    else:
        rows = held_out_rows(competition, cfg.source, cfg.questions) if cfg.questions > 0 else []
    calibration_ids = [] if not cfg.gptq else [prompt_ids(tokenizer, r["prompt"]) for r in held_out_rows(
        competition, cfg.source, cfg.gptq_calibration, skip_days=HELD_OUT_DAYS + max(competition.eval.horizons_days),
        salt="cortex-gptq")]
    log.info("scoring the unquantized model on %d held-out questions", len(rows))
    reference = answer_transformers(hf, rows, competition, cfg.device)
    base_score = score_rows(str(ref), rows, reference, competition)
    ids = [prompt_ids(tokenizer, r["prompt"]) for r in rows]

    quantized = [{"file": "hf/", "bytes": _size(hf), "format": "safetensors (unquantized)",
                  **base_score, "reward_change": 0.0 if rows else None, "parse_rate_change": 0.0 if rows else None}]

    def compared(texts: Sequence[str]) -> dict[str, Any]:
        """A copy's answers scored, and their change against the unquantized model's on the same questions."""
        score = score_rows(str(ref), rows, texts, competition)
        return {**score, "reward_change": _diff(score["mean_reward"], base_score["mean_reward"]),
                "parse_rate_change": _diff(score["parse_rate"], base_score["parse_rate"]),
                "same_answers": sum(a == b for a, b in zip(texts, reference)) if rows else None}

    for kind in cfg.gguf:
        path = export_gguf(hf, out / "gguf" / f"{ref.repo.split('/')[-1]}-{ref.revision[:12]}-{kind}.gguf", kind)
        entry: dict[str, Any] = {"file": str(path.relative_to(out)), "bytes": path.stat().st_size, "format": f"gguf {kind}"}
        try:
            new = greedy_gguf(path, ids, competition.eval.max_new_tokens, tokenizer.eos_token_id)
        except ImportError:
            entry["not_scored"] = "llama-cpp-python is not installed (pip install llama-cpp-python)"
        else:
            entry.update(compared([tokenizer.decode(t, skip_special_tokens=True) for t in new]))
        quantized.append(entry)
        log.info("%s: %d bytes%s", entry["file"], entry["bytes"],
                 f", reward {entry['mean_reward']:.3f}" if entry.get("mean_reward") is not None else "")
    for bits in cfg.gptq:
        started = time.monotonic()
        path = quantize(hf, out / "gptq" / scheme_name(bits), bits, calibration_ids)
        seconds = time.monotonic() - started
        entry = {"file": f"{path.relative_to(out)}/", "bytes": _size(path),
                 "format": f"gptq {scheme_name(bits)} (compressed-tensors pack-quantized)",
                 "calibration_prompts": len(calibration_ids), "quantize_seconds": round(seconds, 1),
                 **compared(answer_transformers(path, rows, competition, cfg.device))}
        quantized.append(entry)
        log.info("%s: %d bytes, reward %s, quantized in %.1f s", entry["file"], entry["bytes"],
                 "not scored" if entry["mean_reward"] is None else f"{entry['mean_reward']:.3f}", seconds)

    card = model_card(ref.repo, ref.revision, competition, steps, benchmark, live, tokenizer.chat_template, quantized)
    write_text(hf / "README.md", card)
    report = {"repo": ref.repo, "revision": ref.revision, "competition": competition.id, "questions": len(rows),
              "lineage": steps, "benchmark": benchmark, "live_record": live, "exports": quantized}
    write_text(out / REPORT, json.dumps(report, indent=1) + "\n")
    return report


def _records(key: str, state_dirs: Sequence[Path], source: str | None) -> tuple[list[dict], list[dict]]:
    """The base's fixed-benchmark scores (averager round records) and live record (validator ledgers)."""
    if not state_dirs:
        return [], []
    from cortex.data import get_source
    from cortex.leaderboard.files import averager_rounds
    from cortex.leaderboard.ledgers import ledger_entries, market_facts
    from cortex.leaderboard.live import base_records

    scores = {}
    for r in averager_rounds(state_dirs):
        for b in (r.get("benchmark_before"), r.get("benchmark_after")):
            if b and b["model"] == key:
                scores[b["questions_sha256"]] = b
    entries = ledger_entries(state_dirs, {key})
    live = base_records(entries, [key], *market_facts(get_source(source), entries)) if entries else []
    return list(scores.values()), live


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())
