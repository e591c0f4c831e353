"""The Cortex averager: merge the winning adapters into the next base, gate it, publish it, point to it.

    python neurons/averager.py --netuid N --wallet.name W --wallet.hotkey H --subtensor.network embedded \\
        --chain.path P --competition ID [--once] [--every-epochs K] [--store local:DIR|hf] [--state DIR] \\
        [--scores PATH ...] [--source SRC] [--margin M] [--max-weight W] [--method exact|rank-r --rank R] \\
        [--wandb.off]

A thin entry point: parse the flags, build the parts, run the rounds (docs/averager.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex.cliargs import ArgumentParser
from cortex.errors import run_command


def main(argv: list[str] | None = None) -> int:
    from averager.config import add_args, from_args
    from cortex.neuron import setup_logging

    parser = ArgumentParser(prog="averager", description=__doc__.splitlines()[0])
    add_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.debug)

    def body() -> None:
        cfg = from_args(args)
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        from averager.service import Averager, Parts

        record = Averager(Parts(cfg, cfg.open_chain(), cfg.open_wallet(), cfg.open_store())).run()
        if record:
            print(f"round {record.round}: {record.status} ({record.reason})"
                  + (f"; published {record.published}" if record.published else ""))

    return run_command("averager", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
