"""Where a run's numbers go: ``metrics.json``, ``training_loss.png`` and wandb (offline by default).

wandb runs offline unless ``WANDB_MODE`` says otherwise (the files land in ``OUTPUT/wandb``;
``wandb sync`` uploads them later); ``--wandb.off`` or ``report_to: none`` turns it off. The
trainers log every step through transformers' wandb callback; the run's summary gets the final
metrics here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from cortex.atomic import write_json

log = logging.getLogger(__name__)
METRICS = "metrics.json"
PLOT = "training_loss.png"


def setup_wandb(out: Path, project: str, enabled: bool) -> str:
    """The ``report_to`` value for the trainers; sets wandb's environment when it is on."""
    if not enabled:
        os.environ["WANDB_DISABLED"] = "true"
        return "none"
    os.environ.pop("WANDB_DISABLED", None)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_PROJECT", project)
    os.environ.setdefault("WANDB_DIR", str(out))
    os.environ.setdefault("WANDB_SILENT", "true")
    (out / "wandb").mkdir(parents=True, exist_ok=True)
    return "wandb"


def finish_wandb(metrics: dict[str, Any]) -> None:
    """Put the final numbers in the wandb run's summary and close it (if one is open)."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is None:
        return
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
    wandb.run.summary.update(flat)
    wandb.finish()


def write_metrics(out: Path, metrics: dict[str, Any]) -> Path:
    path = out / METRICS
    write_json(path, metrics)
    return path


def read_metrics(out: Path) -> dict[str, Any]:
    import json

    path = out / METRICS
    return json.loads(path.read_text()) if path.exists() else {}


def plot_loss(out: Path, stages: dict[str, list[dict[str, Any]]]) -> Path | None:
    """Training and validation loss against the step, one panel per stage that logged a loss
    (GRPO's panel shows its mean reward); returns the PNG's path, or None with nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for stage, history in stages.items():
        series = {"training loss": [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h],
                  "validation loss": [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h],
                  "mean reward": [(h["step"], h["reward"]) for h in history if "reward" in h]}
        series = {k: v for k, v in series.items() if v}
        if series:
            panels.append((stage, series))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (stage, series) in zip(axes[0], panels):
        for label, points in series.items():
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
        ax.set_title(stage.upper())
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = out / PLOT
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
