"""Child processes: each neuron in its own process group with its own log, stopped cleanly.

``Supervisor.run`` runs a batch of commands with at most ``jobs`` at a time, polling them (and
calling back, so the view can refresh) until all have ended or the timeout passes. A child that
exits non-zero is reported with its log path and the log's last lines; one that outlives the
timeout is stopped and reported the same way. ``stop_all`` ends every child still running:
SIGINT to its process group (the neurons exit cleanly on it), then SIGTERM, then SIGKILL.
Children run in their own sessions, so a Ctrl-C in the terminal reaches only `cortex localnet`,
which then stops them in order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

POLL_S = 0.5


@dataclass(frozen=True)
class Command:
    name: str  # e.g. "miner0"
    argv: list[str]
    log: Path


@dataclass
class Child:
    command: Command
    proc: subprocess.Popen | None = None
    started: float | None = None
    ended: float | None = None
    returncode: int | None = None
    timed_out: bool = False
    stopped: bool = False  # ended by ``stop`` (Ctrl-C, a timeout): not reported as a crash

    @property
    def name(self) -> str:
        return self.command.name

    @property
    def state(self) -> str:
        if self.proc is None:
            return "waiting"
        if self.returncode is None:
            return "running"
        if self.timed_out:
            return "timed out"
        if self.stopped:
            return "stopped"
        return "done" if self.returncode == 0 else f"failed ({self.returncode})"

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not (self.timed_out or self.stopped)

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.time()) - self.started

    def tail(self, lines: int = 12) -> str:
        """The log's last lines (progress bars' carriage returns count as line ends)."""
        try:
            with open(self.command.log, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 200 * lines - 4096))
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass
class Failure:
    name: str
    log: Path
    reason: str  # "exit code N" or "timed out after N s"
    tail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}; see {self.log}"


@dataclass
class Supervisor:
    env: dict[str, str]
    cwd: Path
    children: list[Child] = field(default_factory=list)  # every child ever started (for the view)
    failures: list[Failure] = field(default_factory=list)

    def start(self, command: Command) -> Child:
        """Start one command now (outside a batch)."""
        child = Child(command)
        self.children.append(child)
        self._launch(child)
        return child

    def _launch(self, child: Child) -> None:
        command = child.command
        command.log.parent.mkdir(parents=True, exist_ok=True)
        with open(command.log, "ab") as log:
            log.write(f"$ {' '.join(command.argv)}\n".encode())
            log.flush()
            child.proc = subprocess.Popen(command.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=self.env, cwd=self.cwd, start_new_session=True)
        child.started = time.time()

    def running(self) -> list[Child]:
        return [c for c in self.children if c.proc is not None and c.returncode is None]

    def _reap(self, child: Child) -> bool:
        """Record the exit of a finished child; True if it has ended."""
        assert child.proc is not None
        code = child.proc.poll()
        if code is None:
            return False
        child.returncode, child.ended = code, time.time()
        if code != 0 and not (child.timed_out or child.stopped):
            self.failures.append(Failure(child.name, child.command.log, f"exit code {code}", child.tail()))
        return True

    def run(self, commands: Sequence[Command], *, jobs: int, timeout: float,
            tick: Callable[[], None] | None = None) -> list[Child]:
        """Run ``commands`` (at most ``jobs`` at once) to the end; returns their children in order."""
        pending = [Child(c) for c in commands]
        self.children.extend(pending)
        deadline = time.time() + timeout
        while True:
            active = [c for c in pending if c.proc is not None and c.returncode is None]
            for child in active:
                self._reap(child)
            active = [c for c in active if c.returncode is None]
            for child in [c for c in pending if c.proc is None][: max(0, jobs - len(active))]:
                self._launch(child)
                active.append(child)
            if not active:
                if tick is not None:
                    tick()
                return pending
            if time.time() > deadline:
                for child in active:
                    child.timed_out = True
                    self.failures.append(Failure(child.name, child.command.log, f"timed out after {timeout:.0f} s",
                                                 child.tail()))
                self.stop(active)
                for child in [c for c in pending if c.proc is None]:  # never started
                    child.returncode, child.timed_out = -1, True
                return pending
            if tick is not None:
                tick()
            time.sleep(POLL_S)

    def stop(self, children: Sequence[Child], grace: float = 10.0) -> None:
        """End ``children``: SIGINT, then SIGTERM, then SIGKILL, each to the child's process group."""
        live = [c for c in children if c.proc is not None and c.returncode is None]
        for child in live:
            child.stopped = True
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, grace / 2), (signal.SIGKILL, grace)):
            for child in live:
                _signal_group(child, sig)
            end = time.time() + wait
            while live and time.time() < end:
                live = [c for c in live if not self._reap(c)]
                if live:
                    time.sleep(0.1)
            if not live:
                return

    def stop_all(self, grace: float = 10.0) -> int:
        """Stop every child still running; returns how many there were."""
        live = self.running()
        self.stop(live, grace)
        return len(live)


def _signal_group(child: Child, sig: int) -> None:
    assert child.proc is not None
    try:
        os.killpg(child.proc.pid, sig)  # the child leads its own session and process group
    except (ProcessLookupError, PermissionError):
        pass
