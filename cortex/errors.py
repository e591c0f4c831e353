"""The project's error base: every user-facing failure is one line that says what to do.

``run_command`` is the one top-level handler every entry point (``cortex``, ``neurons/*.py``) runs its
body through, so that no input, however wrong, ends in a traceback unless ``--logging.debug`` asks for it.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Callable

from cortex.envfile import load_env_file

log = logging.getLogger(__name__)


class CortexError(Exception):
    """A failure the user can act on. The CLI prints ``str(exc)`` alone, never a traceback."""


def _quiet_stdout() -> None:
    """After a broken pipe (``cortex data show … | head``): point stdout at /dev/null so that the
    interpreter's final flush does not fail again (the Python docs' recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (captured in tests)
        pass


def run_command(name: str, body: Callable[[], int | None], debug: bool = False,
                env_file: str | None = None) -> int:
    """Run a command's body and return its exit status: 0 (or what it returns); a ``CortexError``
    prints ``NAME: error: …`` on stderr and gives 2; any other exception does the same with its type
    named (the traceback too with ``debug``, i.e. ``--logging.debug``); a reader that closes the pipe
    early (``| head``) ends it quietly with 0; Ctrl-C prints ``interrupted`` and gives 130.
    Before the body runs, the checkout's ``.env`` (or ``env_file``) fills unset variables (cortex.envfile)."""
    try:
        load_env_file(env_file)
        status = int(body() or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at the interpreter's exit
        return status
    except CortexError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - the top-level handler: one line, never a bare traceback
        if debug:
            traceback.print_exc()
        text = " ".join(str(exc).split()) or "(no message)"
        hint = "" if debug else " (run again with --logging.debug for the traceback)"
        print(f"{name}: error: {type(exc).__name__}: {text[:500]}{hint}", file=sys.stderr)
        return 2
