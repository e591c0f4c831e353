"""Where a base comes from, and the model card that says so.

Every base the averager publishes carries its ``manifest.json`` (``cortex.protocol.rounds.Manifest``: the
round, the parent revision it merged into, each input adapter with its hotkey, weight and score, the
gate's figures). ``lineage`` follows the parents back through the model store until a revision with no
manifest: the genesis base. Nothing is ever squashed (DESIGN.md §10), so the chain is whole.

``model_card`` writes the exported folder's README: the lineage, the fixed benchmark's figures (from the
averager's round records), the live record (``cortex.leaderboard.live``), the chat template and the answer
format.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from cortex.hub.store import ModelStore, StoreError
from cortex.protocol.records import RecordError
from cortex.protocol.rounds import Manifest

MANIFEST = "manifest.json"  # what averager/publish.py writes beside the weights
MAX_MANIFEST_BYTES = 4 << 20
MAX_GENERATIONS = 10_000  # a longer chain of parents is a loop


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest, or None when it has none (a genesis base); a damaged one is a CortexError."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.read(path)
    except RecordError as exc:
        raise StoreError(f"{path} is not a base manifest: {exc}") from None


def _step(revision: str, m: Manifest | None) -> dict[str, Any]:
    if m is None:
        return {"revision": revision, "genesis": True}
    g = m.gate
    return {"revision": revision, "genesis": False, "round": m.round, "parent": m.parent, "method": m.method,
            "averager": m.averager, "model_hash": m.model_hash,
            "inputs": [{"model": i.model, "uid": i.uid, "hotkey": i.hotkey, "weight": i.weight, "score": i.score}
                       for i in m.inputs],
            "gate": {"merged_reward": g.merged_reward, "base_reward": g.base_reward,
                     "best_single_reward": g.best_single_reward, "best_single": g.best_single, "margin": g.margin,
                     "passed": g.passed, "prompts": g.prompts}}


def lineage(store: ModelStore | None, repo: str, revision: str, first: Manifest | None = None) -> list[dict[str, Any]]:
    """The base's ancestry, newest first, down to genesis: one step per published merge (``_step``).

    ``first``: the manifest already at hand (an exported folder's), else it is fetched. Without a store
    the chain stops after ``first``'s parent, marked ``unknown`` rather than claimed as genesis."""
    steps, seen = [], set()
    manifest = first if first is not None else _fetch(store, repo, revision)
    while True:
        if revision in seen or len(steps) > MAX_GENERATIONS:
            raise StoreError(f"{repo}: the manifests' parents loop back to {revision[:12]}")
        seen.add(revision)
        steps.append(_step(revision, manifest))
        if manifest is None:
            return steps
        parent_repo, _, revision = manifest.parent.rpartition("@")
        repo = parent_repo or repo
        if store is None:
            steps.append({"revision": revision, "genesis": None, "unknown": "no model store given to read further"})
            return steps
        manifest = _fetch(store, repo, revision)


def _fetch(store: ModelStore | None, repo: str, revision: str) -> Manifest | None:
    if store is None:
        return None
    files = {f.path for f in store.list_files(repo, revision)}
    if MANIFEST not in files:
        return None
    with tempfile.TemporaryDirectory(prefix="cortex-manifest-") as tmp:
        store.download(repo, revision, Path(tmp), allow=[MANIFEST], max_bytes=MAX_MANIFEST_BYTES)
        return read_manifest(Path(tmp))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def model_card(repo: str, revision: str, competition: Any, steps: Sequence[dict], benchmark: Sequence[dict],
               live: Sequence[dict], chat_template: str | None, quantized: Sequence[dict] = ()) -> str:
    """The exported folder's README.md (a Hugging Face model card with YAML front matter)."""
    from cortex.data.prompts import ANSWER_FORMAT, SYSTEM_PROMPT

    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation", "tags: [cortex, bittensor, forecasting]",
             "---", "", f"# {repo} @ {revision[:12]}", "",
             f"The current base of the Cortex competition `{competition.id}`: {competition.description}",
             f"Revision `{revision}`. It reads a crypto market's recent daily data and forecasts the close "
             f"{', '.join(map(str, competition.eval.horizons_days))} days ahead for "
             f"{', '.join(competition.eval.assets)}.", "", "## Lineage", ""]
    for s in steps:
        if s.get("genesis"):
            lines.append(f"- `{s['revision'][:12]}`: genesis (no manifest: the competition's starting base)")
        elif s.get("unknown"):
            lines.append(f"- `{s['revision'][:12]}`: parent not read ({s['unknown']})")
        else:
            g = s["gate"]
            inputs = "; ".join(f"{i['model']} (uid {i['uid']}, weight {i['weight']:.3f}, score {_fmt(i['score'])})"
                               for i in s["inputs"])
            lines.append(f"- `{s['revision'][:12]}`: round {s['round']}, {s['method']} merge into `{s['parent']}` of "
                         f"{inputs}; gate on {g['prompts']} prompts: merged {_fmt(g['merged_reward'])}, base "
                         f"{_fmt(g['base_reward'])}, best single {_fmt(g['best_single_reward'])}, "
                         f"{'passed' if g['passed'] else 'failed'}")
    lines += ["", "## Fixed benchmark", ""]
    if benchmark:
        lines += ["| model | questions | mean reward | parse rate | Brier |", "|---|---|---|---|---|"]
        lines += [f"| `{b['model'].split('@')[-1][:12]}` | {b['questions']} | {_fmt(b['mean_reward'])} | "
                  f"{_fmt(b['parse_rate'], 2)} | {_fmt(b['brier'])} |" for b in benchmark]
    else:
        lines.append("No averager round record with a benchmark score of this revision was given (`--state`).")
    lines += ["", "## Live record", ""]
    if live:
        lines += ["Answers to the validators' live questions while this base was current (Brier: lower is better; "
                  "gain: the baseline's Brier minus this base's, with its day-clustered interval).", "",
                  "| window | days | questions | Brier | accuracy | parse rate | gain vs 0.5 | gain vs analyst |",
                  "|---|---|---|---|---|---|---|---|"]
        for w, r in live[-1]["windows"].items():
            if r is None:
                continue
            gains = []
            for name in ("constant_0.5", "analyst"):
                v = r["versus"].get(name)
                gains.append("–" if not v else f"{_fmt(v['brier_gain'])} [{_fmt(v['brier_gain_low'])}, "
                                               f"{_fmt(v['brier_gain_high'])}]")
            lines.append(f"| {w} days | {r['days']} | {r['questions']} | {_fmt(r['brier'])} | {_fmt(r['accuracy'], 2)} | "
                         f"{_fmt(r['parse_rate'], 2)} | {gains[0]} | {gains[1]} |")
    else:
        lines.append("No live answers of this revision found in the validators' ledgers given (`--state`).")
    if quantized:
        lines += ["", "## Quantized copies", "", "| file | size (bytes) | mean reward | parse rate | Δ reward | Δ parse rate |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {q['file']} | {q['bytes']} | {_fmt(q.get('mean_reward'))} | {_fmt(q.get('parse_rate'), 2)} | "
                  f"{_fmt(q.get('reward_change'))} | {_fmt(q.get('parse_rate_change'), 2)} |" for q in quantized]
    lines += ["", "## Prompt and answer format", "", "System prompt:", "", "```text", SYSTEM_PROMPT, "```", "",
              "The answer format:", "", "```text", ANSWER_FORMAT, "```", ""]
    if chat_template:
        lines += ["Chat template (`chat_template.jinja`):", "", "```jinja", chat_template, "```", ""]
    lines += ["Decode greedily, as the validators do. `cortex serve` serves this folder behind an OpenAI-compatible "
              "API and a forecast API (docs/serving.md).", ""]
    return "\n".join(lines)
