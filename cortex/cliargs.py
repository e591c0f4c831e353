"""What every command line of the project shares: a parser whose mistakes are one line, help that
shows each option's default, and argument types that refuse out-of-range numbers before any work.

argparse's own ``error`` prints the whole usage before the message; here a mistake is one line that
names the command and points at ``--help`` (exit status 2, as argparse), like every ``CortexError``.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, NoReturn


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, except where there is nothing to show (None, off, empty)
    or the help text already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not shows_default(action.default) or "default" in text.lower()
                or not (action.option_strings or action.nargs in ("?", "*"))):
            return text
        return f"{text} (default: %(default)s)"


def shows_default(default: object) -> bool:
    return not (default is None or default is False or default is argparse.SUPPRESS or default == [])


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors and defaults in ``--help``; its sub-parsers are of the same kind."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        if action.help is None and action.option_strings and shows_default(action.default):
            action.help = "default: %(default)s"  # argparse shows no default where there is no help text
        return action

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` (to ``high``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in its messages
    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number above zero (``nan``, ``inf`` and ``-1`` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


positive_float.__name__ = "float"
PORT = int_at_least(1, 65535)


def share(text: str) -> float:
    """An argparse ``type``: a number in [0, 1] (``nan`` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 1], got {text}")
    return value


share.__name__ = "float"


def whole_days(text: str) -> tuple[int, ...]:
    """An argparse ``type``: forecast horizons, whole days >= 1 separated by commas (``''``: none), sorted once each."""
    try:
        days = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"horizons must be whole days separated by commas like 1,7, got {text!r}") from None
    if any(d < 1 for d in days):
        raise argparse.ArgumentTypeError(f"horizons must be whole days >= 1, got {text!r}")
    return days


whole_days.__name__ = "days"
