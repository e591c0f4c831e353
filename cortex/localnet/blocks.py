"""Block production for a local subnet, and the block arithmetic of its rounds.

The local chain is a manual-block chain whose blocks `cortex localnet` produces itself: one every
``block_time`` seconds while miners train and the averager merges, so every process sees a live
chain. Two things a real network gets from its long tempo (72 minutes on finney) are made
explicit here instead: the chain skips ahead to the first block whose evaluation window admits the
round's commitments, and it holds still while validators score, so that every validator reads the
same sync block, draws the same evaluation set and sets the same weights, however long scoring takes
on a busy CPU.
"""

from __future__ import annotations

import threading
import time

from cortex.eval.evalset import SimulatedClock, gate_window
from cortex.protocol.competition import EvalConfig


def first_eligible_sync(after: int, last_commit: int, round_blocks: int, clock: SimulatedClock,
                        cfg: EvalConfig) -> int:
    """The first round start (a multiple of ``round_blocks``) at or after ``after`` whose evaluation
    window admits a commitment made at ``last_commit``."""
    sync = -(-max(after, 0) // round_blocks) * round_blocks
    while gate_window(clock, sync, cfg).eligible_before_block <= last_commit:
        sync += round_blocks
    return sync


def next_epoch_block(last_epoch: int, tempo: int, block: int) -> int:
    """The first block after ``block`` at which the subnet's epoch (Yuma Consensus) runs."""
    due = last_epoch + tempo
    while due <= block:
        due += tempo
    return due


class BlockProducer:
    """Produces a block every ``block_time`` seconds on a manual-block chain, from its own thread.

    ``hold()`` stops production, ``release()`` resumes it, ``advance_to(n)`` produces blocks up to
    ``n`` at once (and waits until they exist). The thread opens its own connection to the chain
    file; every other process reads the same file.
    """

    def __init__(self, chain_path, block_time: float) -> None:
        self.chain_path, self.block_time = chain_path, block_time
        self._lock = threading.Condition()
        self._held = False
        self._target: int | None = None
        self._stop = False
        self._error: BaseException | None = None
        self.head = 0
        self._ready = False
        self._thread = threading.Thread(target=self._run, name="block-producer", daemon=True)

    def start(self) -> BlockProducer:
        self._thread.start()
        with self._lock:
            self._lock.wait_for(lambda: self._ready or self._error is not None, timeout=60)
        self._raise()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._thread.join(timeout=30)

    def hold(self) -> int:
        """Stop producing blocks; returns the head, where the chain now stays."""
        with self._lock:
            self._held = True
            return self.head

    def release(self) -> None:
        with self._lock:
            self._held = False
            self._lock.notify_all()

    def advance_to(self, block: int, timeout: float = 120.0) -> int:
        """Produce blocks up to ``block`` now (held or not); returns the head."""
        with self._lock:
            self._target = block
            self._lock.notify_all()
            self._lock.wait_for(lambda: self.head >= block or self._error is not None, timeout=timeout)
        self._raise()
        return self.head

    def _raise(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"block production stopped: {self._error}") from self._error

    def _run(self) -> None:
        from cortex.localchain.backend import EmbeddedSubstrate

        try:
            chain = EmbeddedSubstrate(self.chain_path)
            with self._lock:
                self.head = chain.advance(0)  # the head as it stands
                self._ready = True
                self._lock.notify_all()
            next_at = time.monotonic() + self.block_time
            while True:
                with self._lock:  # blocks are produced under the lock: once hold() returns, none follows
                    if self._stop:
                        return
                    if self._target is not None and self.head < self._target:
                        self.head = chain.advance(self._target - self.head)
                    elif not self._held and time.monotonic() >= next_at:
                        self.head = chain.advance(1)
                        next_at = time.monotonic() + self.block_time
                    else:
                        self._lock.wait(timeout=min(0.1, self.block_time))
                        continue
                    if self._target is not None and self.head >= self._target:
                        self._target = None
                    self._lock.notify_all()
        except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator's thread
            with self._lock:
                self._error = exc
                self._lock.notify_all()
