"""Progress of a local subnet: a live table on a terminal, plain lines otherwise.

Both views take the same calls from the schedule (``phase``, ``note``, ``round``, ``failure``,
``refresh``). The live view redraws a header (block, market day, phase, elapsed time), the
processes of the current phase with their state, time and last log line, and the rounds so far.
The plain view prints one line per event and per process that starts or ends, for logs and CI.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cortex.eval.evalset import SimulatedClock
from cortex.localnet.processes import Child, Supervisor

if TYPE_CHECKING:
    from typing import Self

HEARTBEAT_S = 60.0  # the plain view prints what running processes are doing this often
STATE_STYLE = {"running": "yellow", "done": "green", "waiting": "dim"}


class View:
    """The plain view; the live view overrides how things are shown."""

    def __init__(self, supervisor: Supervisor, clock: SimulatedClock, console: Console | None = None) -> None:
        self.supervisor, self.clock = supervisor, clock
        self.console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 160)
        self.started = time.time()
        self.title, self.text = "", ""
        self.producer = None
        self.reports: list[Any] = []
        self._seen: dict[int, str] = {}  # id(child) → the state last printed
        self._heartbeat = time.time()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.refresh()

    # --- calls from the schedule -----------------------------------------------------------

    def phase(self, title: str, text: str) -> None:
        self.title, self.text = title, text
        self.line(f"[bold]{title}[/]: {text}")

    def note(self, text: str) -> None:
        self.line(f"  {text}")

    def members(self, members: dict) -> None:
        for m in members.values():
            stake = f", stake {m.stake:g} TAO" if m.stake else ""
            self.line(f"  uid {m.uid:>2} {m.name:<11} {m.hotkey}{stake}")

    def attach_chain(self, producer) -> None:
        self.producer = producer

    def round(self, report) -> None:
        if report not in self.reports:
            self.reports.append(report)
        if report.phase == "done":
            self.line(round_line(report))

    def failure(self, child: Child) -> None:
        self.line(f"  [red]{child.name} {child.state}[/]: see {child.command.log}")
        tail = child.tail(5)
        if tail:
            self.line(Text("    " + tail.replace("\n", "\n    "), style="dim"))

    def refresh(self) -> None:
        now = time.time()
        for child in self.supervisor.children:
            state = child.state
            if self._seen.get(id(child)) != state and state != "waiting":
                self._seen[id(child)] = state
                if state == "running":
                    self.line(f"  {child.name} started (log {child.command.log})")
                else:
                    self.line(f"  {child.name} {state} after {child.seconds:.0f}s")
        running = [c for c in self.supervisor.running() if c.seconds >= HEARTBEAT_S]
        if running and now - self._heartbeat > HEARTBEAT_S:  # long phases: a sign of life now and then
            self._heartbeat = now
            for child in running:
                self.line(f"  {child.name} running {child.seconds:.0f}s: {last_line(child)[-120:]}")

    def line(self, text) -> None:
        self.console.print(text)

    # --- shared pieces ------------------------------------------------------------------------

    def header(self) -> str:
        elapsed = time.time() - self.started
        chain = ""
        if self.producer is not None:
            head = self.producer.head
            chain = f"block {head} (market day {self.clock.day(head)})  "
        return f"{chain}{self.title}: {self.text}  [{elapsed // 60:.0f}m{elapsed % 60:02.0f}s]"


class LiveView(View):
    """A live table, redrawn a few times a second (rich); events still print above it."""

    def __enter__(self) -> Self:
        self.live = Live(self._render(), console=self.console, refresh_per_second=2, transient=True)
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def refresh(self) -> None:
        for child in self.supervisor.children:  # keep the failure lines; the table shows the rest
            self._seen[id(child)] = child.state
        self.live.update(self._render())

    def line(self, text) -> None:
        self.console.print(text)

    def _render(self) -> Group:
        procs = Table(box=None, expand=False, pad_edge=False)
        for column in ("process", "state", "time", "last log line"):
            procs.add_column(column, no_wrap=True, overflow="ellipsis", max_width=None if column != "last log line"
                             else max(20, self.console.width - 40))
        current = [c for c in self.supervisor.children if c.state in ("running", "waiting")]
        for child in current or self.supervisor.children[-4:]:
            last = last_line(child)[-200:]
            procs.add_row(child.name, Text(child.state, style=STATE_STYLE.get(child.state, "red")),
                          f"{child.seconds:.0f}s", Text(last, style="dim"))
        rounds = Table(box=None, pad_edge=False)
        for column in ("round", "phase", "published", "sync block", "scored by", "averager"):
            rounds.add_column(column)
        for r in self.reports:
            rounds.add_row(*round_cells(r))
        return Group(Text(self.header(), style="bold"), procs, rounds)


def last_line(child: Child) -> str:
    """The newest line of a child's log (a progress bar's latest state, too)."""
    return child.tail(1).strip()


def round_cells(r) -> list[str]:
    published = sum(1 for m in r.miners.values() if m.get("published"))
    kept = sum(1 for m in r.miners.values() if m.get("kept"))
    scored = sum(1 for v in r.validators.values() if v.get("scored"))
    averager = "-" if r.averager is None else averager_cell(r.averager)
    new = f"{published}/{len(r.miners) - kept}" + (f" (+{kept} kept)" if kept else "")
    return [str(r.round), r.phase, new if r.miners else "-",
            "-" if r.sync_block is None else str(r.sync_block), f"{scored}/{len(r.validators)}" if r.validators else "-",
            averager]


def averager_cell(record: dict) -> str:
    """The round's outcome and, with a benchmark, the base's reward on it before → after."""
    status = record.get("status", "?")
    before, after = record.get("benchmark_before") or {}, record.get("benchmark_after") or {}
    if before.get("mean_reward") is None or after.get("mean_reward") is None:
        return status
    return f"{status}, base on the benchmark {before['mean_reward']:+.3f} → {after['mean_reward']:+.3f}"


def round_line(r) -> str:
    _, _, published, sync, scored, averager = round_cells(r)
    took = ", ".join(f"{k} {v:.0f}s" for k, v in r.seconds.items())
    return (f"round {r.round} done: {published} miners published, scored at block {sync} by {scored} validators, "
            f"averager {averager} ({took})")


def make_view(supervisor: Supervisor, clock: SimulatedClock, live: bool | None) -> View:
    live = sys.stdout.isatty() if live is None else live
    return (LiveView if live else View)(supervisor, clock)
