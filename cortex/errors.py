"""The project's error base: every user-facing failure is one line that says what to do."""

from __future__ import annotations

import sys
from typing import Callable

from cortex.envfile import load_env_file


class CortexError(Exception):
    """A failure the user can act on. The CLI prints ``str(exc)`` alone, never a traceback."""


def run_command(name: str, body: Callable[[], int | None]) -> int:
    """Run a command's body and return its exit status: 0 (or what it returns); a ``CortexError``
    prints ``NAME: error: …`` on stderr and gives 2; Ctrl-C prints ``interrupted`` and gives 130.
    Before the body runs, ``.env`` in the working directory fills unset variables (cortex.envfile)."""
    load_env_file()
    try:
        return int(body() or 0)
    except CortexError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
