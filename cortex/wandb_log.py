"""The one wandb logger of the three neurons: offline by default, under the neuron's state folder, never fatal.

A neuron's numbers (the validator's score tables, the averager's rounds, the miner's run) go to one
wandb run per process. The run is offline unless ``--wandb.mode online`` (files under
``<folder>/wandb``; ``wandb sync`` uploads them later), and any wandb failure (not installed, no
network, a bad key) is logged once as a warning and turns the logger off: logging never stops a
neuron. The miner's trainers log through transformers' wandb callback: :meth:`WandbLog.report_to`
sets the environment that callback reads, and :meth:`WandbLog.finish` closes the run it opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from cortex.errors import CortexError

log = logging.getLogger(__name__)
MODES = ("offline", "online")


@dataclass(frozen=True)
class WandbConfig:
    """``--wandb.*``: whether and where a neuron logs to wandb."""

    enabled: bool = True  # --wandb.off turns it off
    project: str | None = None  # None: the role's (cortex-validator, cortex-averager, the miner's YAML)
    mode: str = "offline"  # offline (files, `wandb sync` later) | online
    entity: str | None = None  # the wandb team or user (None: the account's default)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CortexError(f"--wandb.mode must be offline or online, got {self.mode!r}")


class WandbLog:
    """One wandb run for one neuron process; opened on the first ``log``."""

    def __init__(self, cfg: WandbConfig, *, folder: str | Path, project: str, name: str,
                 config: Mapping[str, Any] | None = None) -> None:
        self.cfg, self.folder, self.name = cfg, Path(folder), name
        self.project = cfg.project or project
        self.config = dict(config or {})
        self.run: Any = None
        self.off = not cfg.enabled

    def _fail(self, exc: BaseException) -> None:
        log.warning("wandb logging failed (%s); continuing without it", exc)
        self.off = True
        if self.run is not None:
            with contextlib.suppress(Exception):
                self.run.finish()
        self.run = None

    def _open(self) -> Any:
        import wandb

        if self.run is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.run = wandb.run or wandb.init(project=self.project, entity=self.cfg.entity, mode=self.cfg.mode,
                                               dir=str(self.folder), name=self.name, config=self.config)
        return self.run

    def log(self, data: Mapping[str, Any],
            tables: Mapping[str, tuple[Sequence[str], Sequence[Sequence[Any]]]] | None = None) -> None:
        """Log ``data`` (numbers, strings) and ``tables`` (name → (columns, rows)) as one step."""
        if self.off:
            return
        try:
            import wandb

            run = self._open()
            step = dict(data)
            for key, (columns, rows) in (tables or {}).items():
                step[key] = wandb.Table(columns=list(columns), data=[list(r) for r in rows])
            run.log(step)
        except Exception as exc:  # noqa: BLE001 - logging must never stop a neuron
            self._fail(exc)

    def report_to(self) -> str:
        """For trainers that open their own run (transformers' callback): set its environment; the
        ``report_to`` value (``wandb``, or ``none`` when off)."""
        if self.off:
            os.environ["WANDB_DISABLED"] = "true"
            return "none"
        os.environ.pop("WANDB_DISABLED", None)
        env = {"WANDB_MODE": self.cfg.mode, "WANDB_PROJECT": self.project, "WANDB_DIR": str(self.folder),
               "WANDB_SILENT": "true", "WANDB_ENTITY": self.cfg.entity}
        for key, value in env.items():
            if value is not None:
                os.environ.setdefault(key, value)  # the user's own WANDB_* settings win
        (self.folder / "wandb").mkdir(parents=True, exist_ok=True)
        return "wandb"

    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        """Put the plain values of ``summary`` in the run's summary and close the run (ours or the trainer's)."""
        if self.off:
            return
        try:
            import wandb

            run = self.run or wandb.run
            if run is None:
                return
            if summary:
                run.summary.update({k: v for k, v in summary.items()
                                    if v is None or isinstance(v, (int, float, str, bool))})
            run.finish()
            self.run = None
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
