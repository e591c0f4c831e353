"""What a teacher is: something that writes the assistant completion of a sample."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from cortex.data.frame import DataError
from cortex.data.samples import Sample


class TeacherError(DataError):
    """A teacher cannot run (no key, no fit) — the message says what to do."""


@runtime_checkable
class Teacher(Protocol):
    """``fit`` sees the training split only; ``complete`` returns one completion (or None when the
    teacher failed on that sample) per sample, as ``<think>…</think><answer>{…}</answer>``."""

    name: str

    def fit(self, train: Sequence[Sample]) -> None: ...

    def complete(self, samples: Sequence[Sample], progress: bool = False) -> list[str | None]: ...

    def describe(self) -> dict: ...
