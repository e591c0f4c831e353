"""Tokens and settings from a ``.env`` file, for the neurons and the ``cortex`` command.

Two places only, never the folder a command happens to run from (a stray ``.env`` there could
redirect the teacher or the Hub endpoint): the checkout's own ``.env`` (the repository root that
holds this package, the folder pm2 runs the neurons from; template: ``.env.example``), or the file
given with ``cortex --env-file PATH``. It is read with python-dotenv. A variable already set in the
environment wins, and an empty value in the file counts as unset, so the template's blank
``HF_TOKEN=`` never hides a token saved by ``hf auth login``.
"""

from __future__ import annotations

import os
from pathlib import Path


def checkout_root() -> Path | None:
    """The repository root holding this package when it runs from a checkout (an editable install);
    None when it is installed as a package (site-packages holds no ``setup.py`` beside it)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "setup.py").is_file() and (root / "cortex").is_dir() else None


def env_file_path(explicit: str | Path | None = None) -> Path | None:
    """The ``.env`` to read: ``explicit`` (which must exist), else the checkout's, else none."""
    if explicit is not None:
        from cortex.errors import CortexError  # here: cortex.errors imports this module

        path = Path(explicit).expanduser()
        if not path.is_file():
            raise CortexError(f"--env-file {path}: no such file")
        return path
    root = checkout_root()
    return root / ".env" if root is not None else None


def load_env_file(explicit: str | Path | None = None) -> list[str]:
    """Set the non-empty variables of the ``.env`` file (:func:`env_file_path`) that the environment
    lacks; returns the names set."""
    path = env_file_path(explicit)
    if path is None or not path.is_file():
        return []
    from dotenv import dotenv_values  # only when there is a file: importing cortex needs no python-dotenv

    added = {k: v for k, v in dotenv_values(path).items() if v and k not in os.environ}
    os.environ.update(added)
    return list(added)
