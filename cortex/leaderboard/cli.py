"""`cortex leaderboard`: serve the subnet's leaderboard (FastAPI), or export a static copy.

    cortex leaderboard --chain.path work/chain.db --state work/validator0 --state work/averager --port 8000
    cortex leaderboard --subtensor.network finney --netuid 1 --state /var/lib/cortex
    cortex leaderboard --chain.path work/chain.db --state work --export site/
"""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path

from cortex.chain.connect import EMBEDDED, connect
from cortex.cliargs import PORT, int_at_least, positive_float
from cortex.errors import CortexError

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subtensor.network", dest="network", default=EMBEDDED,
                        help="embedded (offline, with --chain.path), finney, test, local or ws://…")
    parser.add_argument("--chain.path", dest="chain_path", default=None,
                        help="the embedded chain's file (with --subtensor.network embedded)")
    parser.add_argument("--netuid", type=int_at_least(0, 65535), default=1, help="the subnet's netuid")
    parser.add_argument("--state", action="append", default=[], metavar="DIR",
                        help="a folder holding validator score tables (scores/) or averager rounds (rounds/), "
                             "searched recursively; repeatable")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=PORT, default=8000, help="port to listen on (1 to 65535)")
    parser.add_argument("--ttl", type=positive_float, default=5.0, help="seconds a snapshot is served before re-reading")
    parser.add_argument("--export", metavar="DIR", help="write a static copy to DIR instead of serving")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cortex.leaderboard.data import snapshot

    if args.network == EMBEDDED and args.chain_path and not Path(args.chain_path).is_file():
        raise CortexError(f"no chain file at {args.chain_path}: create one with `cortex chain init --path …`")
    sub = connect(args.network, args.chain_path)
    for folder in args.state:
        if not Path(folder).is_dir():
            raise CortexError(f"--state {folder} is not a folder")
    load = functools.partial(snapshot, sub, args.netuid, [Path(p) for p in args.state])
    if args.export:
        from cortex.leaderboard.export import export

        files = export(load(), args.export)
        print(f"wrote {len(files)} files to {args.export} (open {Path(args.export) / 'index.html'})")
        return 0
    import uvicorn

    from cortex.leaderboard.app import create_app

    load()  # fail here, with a clear error, rather than on the first request
    _check_port(args.host, args.port)
    log.info("leaderboard for subnet %d on %s at http://%s:%d/", args.netuid, args.network, args.host, args.port)
    uvicorn.run(create_app(load, ttl=args.ttl), host=args.host, port=args.port, log_level="warning")
    return 0


def _check_port(host: str, port: int) -> None:
    """A port another process holds is a one-line error here, not uvicorn's log and exit status 1."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise CortexError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another with "
                          f"--port {port + 1 if port < 65535 else 8000}") from None
