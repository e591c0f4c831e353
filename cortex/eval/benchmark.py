"""The base's score on a fixed benchmark question set, so that rounds compare like with like.

The gate's questions are new every round (drawn from the round's window), so its numbers say
whether a merge beats the base *that round*, not whether the base improves over time. The
benchmark is one fixed set of resolved questions (``--benchmark FILE``: JSON lines, one row each
with ``prompt`` and the outcome columns the reward reads), the same in every round. The base a
round starts from and the base it leaves (the merge when published, else the same base) are each
scored on it with the validators' evaluation code (greedy, the competition's token budget and
reward): mean reward, parse rate, the Brier score of ``p_up`` over the answers that parse, the Brier
skill over every question (``cortex.eval.ceiling``) and each question's ``p_up``, so two bases compare
question by question (the localnet's final − genesis interval).
A revision is scored once; its result is kept under ``<state>/benchmark/`` and reused.

The set must be questions no base and no miner trained on (the localnet uses the bootstrap's
held-out split, later than every training cutoff of the run); a real network pins such a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from cortex.atomic import write_json, write_text
from cortex.errors import CortexError
from cortex.protocol.competition import Competition
from cortex.protocol.records import RecordError
from cortex.protocol.rounds import BenchmarkScore

log = logging.getLogger(__name__)
MAX_QUESTIONS = 10_000
OUTCOME_KEYS = ("prompt", "asset", "horizon_days", "outcome_return", "realized_vol")


def load_questions(path: Path) -> tuple[list[dict[str, Any]], str]:
    """(rows, sha256 of the file): every line a JSON object with a prompt and a resolved outcome."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CortexError(f"--benchmark {path}: {exc}") from None
    rows = []
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise CortexError(f"--benchmark {path}, line {n}: not JSON ({exc})") from None
        missing = [k for k in OUTCOME_KEYS if not isinstance(row, dict) or row.get(k) is None]
        if missing:
            raise CortexError(f"--benchmark {path}, line {n}: no {', '.join(missing)} (a resolved question needs them)")
        rows.append(row)
    if not rows or len(rows) > MAX_QUESTIONS:
        raise CortexError(f"--benchmark {path}: {len(rows)} questions; give between 1 and {MAX_QUESTIONS}")
    return rows, hashlib.sha256(data).hexdigest()


def write_questions(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Rows as a benchmark file (what ``load_questions`` reads); the teacher's answer is left out."""
    lines = [json.dumps({k: v for k, v in row.items() if k != "messages"}, sort_keys=True) for row in rows]
    write_text(Path(path), "\n".join(lines) + "\n")
    return Path(path)


def summarise(model: str, rows: Sequence[Mapping[str, Any]], rewards: Sequence[float] | None,
              parts: Sequence[Mapping[str, Any]], questions_sha256: str, reason: str | None = None) -> BenchmarkScore:
    """The score of one model's answers: mean reward, parse rate, Brier score of the parsed ``p_up``, Brier
    skill over every question and each question's ``p_up``."""
    if rewards is None:
        return BenchmarkScore(model=model, questions=len(rows), questions_sha256=questions_sha256, reason=reason)
    from cortex.eval.ceiling import brier_skill, forecasts as parsed_forecasts
    from cortex.reward.score import outcome_of

    forecasts = parsed_forecasts(parts)
    parsed = [(p, row) for p, row in zip(forecasts, rows) if p is not None]
    brier = (sum((p - float(outcome_of(row).went_up)) ** 2 for p, row in parsed) / len(parsed) if parsed else None)
    return BenchmarkScore(model=model, questions=len(rows), questions_sha256=questions_sha256,
                          mean_reward=sum(rewards) / len(rewards), parse_rate=len(parsed) / len(rows), brier=brier,
                          brier_skill=brier_skill(forecasts, rows), p_up=forecasts)


class Benchmark:
    """Scores base revisions on the fixed question set, each once (cached under ``cache``)."""

    def __init__(self, path: Path, cache: Path, competition: Competition, device: str = "cpu") -> None:
        self.rows, self.sha256 = load_questions(path)
        self.cache, self.comp, self.device = Path(cache), competition, device

    def _file(self, model: str) -> Path:
        key = hashlib.sha256(f"{model}\n{self.sha256}".encode()).hexdigest()[:24]
        return self.cache / f"{key}.json"

    def score(self, model: str, base_dir: Path) -> BenchmarkScore:
        """``model`` (repo@revision, whose files are ``base_dir``) on the benchmark."""
        from cortex.eval.generate import Generator, evaluate

        cached = self._file(model)
        if cached.is_file():
            try:
                found = BenchmarkScore.read(cached)
                if found.model == model and found.questions_sha256 == self.sha256:
                    return found
            except RecordError as exc:
                log.warning("benchmark cache %s unreadable (%s); scoring again", cached, exc)
        ev = self.comp.eval
        generator = Generator.load(base_dir, device=self.device, max_new_tokens=ev.max_new_tokens,
                                   batch_size=ev.batch_size)
        result = evaluate(generator, self.rows, key=model, config=self.comp.reward)
        del generator
        out = summarise(model, self.rows, result.rewards, result.parts, self.sha256, result.reason)
        log.info("benchmark: %s on %d fixed questions: mean reward %s, parse rate %s, Brier %s", model,
                 out.questions, _fmt(out.mean_reward), _fmt(out.parse_rate), _fmt(out.brier))
        write_json(cached, out.to_json())
        return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
