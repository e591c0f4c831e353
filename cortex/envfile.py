"""Tokens and settings from a ``.env`` file, for the neurons and the ``cortex`` command.

``.env`` in the working directory (the checkout's root under pm2; template: ``.env.example``)
is read with python-dotenv. A variable already set in the environment wins, and an empty value
in the file counts as unset, so the template's blank ``HF_TOKEN=`` never hides a token saved by
``hf auth login``.
"""

from __future__ import annotations

import os
from pathlib import Path


def load_env_file(path: str | Path = ".env") -> list[str]:
    """Set the non-empty variables of ``path`` that the environment lacks; the names set."""
    path = Path(path)
    if not path.is_file():
        return []
    from dotenv import dotenv_values  # only when there is a file: importing cortex needs no python-dotenv

    added = {k: v for k, v in dotenv_values(path).items() if v and k not in os.environ}
    os.environ.update(added)
    return list(added)
