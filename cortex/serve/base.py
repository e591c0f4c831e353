"""Which base the server answers with, and the swap to a new one without dropping a request.

``Served`` holds the current :class:`~cortex.serve.engine.Engine`. A request takes the reference once and
sends its work to that engine, so swapping is: load the new base completely (a failure leaves
everything as it was), change the one reference, then ``close()`` the old engine, which stops only after
the requests already queued on it have been answered.

``Follower`` asks a ``locate()`` function (the chain's base pointer: ``cortex.model.pointer.current_base``)
which base is current, every ``interval`` seconds or on ``refresh()``. A new revision is fetched and
checked against the pointer's salted hash (``BaseRef.fetch``) before it is loaded; a revision that
fails its check, a store that is down, or a folder that vanished is logged, counted and shown on
``/health`` as ``last_error``, and the old base keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cortex.model.pointer import BaseRef
from cortex.serve.engine import Engine

log = logging.getLogger(__name__)


class Served:
    """The engine requests are sent to; ``swap`` replaces it."""

    def __init__(self, engine: Engine, ref: BaseRef):
        self.engine, self.ref = engine, ref
        self.swaps = 0
        self.lock = threading.Lock()

    def current(self) -> tuple[Engine, BaseRef]:
        with self.lock:
            return self.engine, self.ref

    def swap(self, engine: Engine, ref: BaseRef) -> None:
        with self.lock:
            old, self.engine, self.ref = self.engine, engine, ref
            self.swaps += 1
        old.close()  # after the requests already on it
        log.info("serving %s (was %s)", ref, old.revision[:12])


@dataclass
class Follower:
    """Follows ``locate()`` (None: no base yet) and swaps ``served`` to each new base once it is checked."""

    served: Served
    locate: Callable[[], BaseRef | None]
    fetch: Callable[[BaseRef], BaseRef]  # downloads and checks (BaseRef.fetch with the store bound)
    load: Callable[[Path, str], Engine]
    interval: float = 60.0
    last_error: str | None = None
    failures: int = 0
    checked_at: float | None = None

    def refresh(self) -> bool:
        """Check once; True when a new base was swapped in. Never raises: a failure is kept in ``last_error``."""
        try:
            ref = self.locate()
            self.checked_at = time.time()
            if ref is None or ref.revision == self.served.current()[1].revision:
                return False
            fetched = self.fetch(ref)
            engine = self.load(fetched.path, str(fetched))
        except Exception as exc:  # noqa: BLE001 - keep serving the old base, say why on /health
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("cannot switch to the new base: %s (still serving %s)", self.last_error,
                      self.served.current()[1])
            return False
        self.served.swap(engine, fetched)
        self.last_error = None
        return True

    def start(self) -> threading.Thread:
        def loop() -> None:
            while True:
                time.sleep(self.interval)
                self.refresh()

        thread = threading.Thread(target=loop, name="cortex-serve-follow", daemon=True)
        thread.start()
        return thread
