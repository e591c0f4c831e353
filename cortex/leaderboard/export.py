"""`cortex leaderboard --export DIR`: a static copy of the leaderboard, to serve from anywhere.

Writes ``index.html``, ``miner-<uid>.html`` per miner and ``leaderboard.json`` (the API's data),
each atomically, linked to one another by relative paths.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from cortex.atomic import write_text
from cortex.leaderboard.render import FILE_LINKS, index_page, miner_page


def export(snap: Mapping, out: str | Path) -> list[Path]:
    """Write the static copy of ``snap`` under ``out``; returns the files written."""
    out = Path(out)
    pages = {out / "index.html": index_page(snap, FILE_LINKS),
             out / "leaderboard.json": json.dumps(snap, indent=1, sort_keys=True) + "\n"}
    for uid in snap["miners"]:
        pages[out / f"miner-{int(uid)}.html"] = miner_page(snap, int(uid), FILE_LINKS)
    for path, text in pages.items():
        write_text(path, text)
    return sorted(pages)
