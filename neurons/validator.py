"""The Cortex validator: ``python neurons/validator.py --netuid N --wallet.name W --wallet.hotkey H
--subtensor.network embedded|test|finney [--chain.path P] [--once] [--engine transformers|vllm] …``

A thin entry point: parse the flags, build the parts, run the rounds (docs/validator.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cortex.cliargs import ArgumentParser
from cortex.errors import run_command


def main(argv: list[str] | None = None) -> int:
    from cortex.eval.engines import require_engine
    from cortex.neuron import setup_logging
    from validator.config import add_args, from_args

    parser = ArgumentParser(prog="validator", description=__doc__.splitlines()[0])
    add_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.debug)

    def body() -> None:
        cfg = from_args(args)
        if args.export_ledger:  # no chain, no model: the ledger's entries as JSON
            from validator.ledger import Ledger

            with Ledger(cfg.ledger) as ledger:
                count = ledger.export(args.export_ledger, validator=cfg.wallet_hotkey)
            print(f"{count} ledger entries written to {args.export_ledger}")
            return
        # before any work: no GPU, no vllm, or an engine that cannot serve a competition is a one-line error
        require_engine(cfg.engine, cfg.schedule().competitions, cfg.engine_options)
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        from validator.round import Parts, Validator

        parts = Parts(cfg, cfg.open_chain(), cfg.open_wallet(), cfg.open_store(), cfg.schedule())
        Validator(parts).run()

    return run_command("validator", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
