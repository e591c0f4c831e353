"""Where a run's numbers go: ``metrics.json`` (a :class:`cortex.protocol.metrics.RunMetrics`) and
``training_loss.png``. wandb (offline by default, ``cortex.wandb_log``) gets them from ``miner.run``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from cortex.protocol.metrics import RunMetrics

log = logging.getLogger(__name__)
METRICS = "metrics.json"
PLOT = "training_loss.png"


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has no such numbers; a diverged loss is one)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_metrics(out: Path, metrics: dict[str, Any]) -> Path:
    """Check ``metrics`` against :class:`RunMetrics` (a key it does not declare is an error) and write it."""
    path = out / METRICS
    RunMetrics.from_json(_finite(metrics), where=f"the run's metrics for {path}").write(path)
    return path


def read_metrics(out: Path) -> dict[str, Any]:
    """A run's metrics as written (``RecordError`` if the file is not a ``RunMetrics``); {} when absent."""
    path = out / METRICS
    return RunMetrics.read(path).plain() if path.exists() else {}


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
