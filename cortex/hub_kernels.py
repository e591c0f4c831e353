"""Hub kernels are off in every Cortex process unless an operator turns them on (DESIGN.md §11).

transformers 5.2x "kernelizes" every model it loads, and again when training calls
``model.train()``, whenever the ``kernels`` package is installed (transformers itself depends on
it): on CUDA that downloads kernel code from the Hub (``kernels-community/rotary`` and others) and
runs it inside the process. A validator, a miner or the averager must never run code it did not
ask for, and two validators must not differ because one fetched a newer kernel; offline it also
crashes the load (``could not verify publisher trust status``).

transformers reads ``USE_HUB_KERNELS`` at every load, so the default is set once, when ``cortex``
is imported (this module is imported by ``cortex/__init__.py`` and imports nothing heavy), and every
``from_pretrained`` in the project also passes :func:`load_kwargs` (``use_kernels=False``) for the
code paths that read their own argument. An operator opts in with ``--hub-kernels`` (neurons and
GPU benchmarks call :func:`enable`) or by exporting ``USE_HUB_KERNELS=1`` before starting; both are
logged. This is transformers' own switch, not a re-implementation of it.
"""

from __future__ import annotations

import logging
import os

ENV = "USE_HUB_KERNELS"
FLAG_HELP = (
    "let transformers download and run kernel code from the Hugging Face Hub (kernels-community/*) "
    "at model load and at train(); off by default: no role runs code it did not ask for"
)
_TRUE = {"1", "yes", "true", "on"}

log = logging.getLogger(__name__)


def default_off() -> None:
    """Set ``USE_HUB_KERNELS=0`` unless the environment already chose (an explicit operator opt-in)."""
    os.environ.setdefault(ENV, "0")


def enabled() -> bool:
    """Whether Hub kernels are on for this process (transformers' own reading of the variable)."""
    return os.environ.get(ENV, "0").strip().lower() in _TRUE


def enable() -> None:
    """The operator's explicit opt-in (``--hub-kernels``): transformers may fetch and run Hub kernels."""
    os.environ[ENV] = "1"
    log.warning("Hub kernels ON (--hub-kernels): transformers may download and run kernel code from the Hub")


def load_kwargs() -> dict[str, bool]:
    """What every ``from_pretrained`` of a model is given: ``use_kernels`` as this process decided."""
    if enabled():
        log.warning("%s is on: this load may download and run kernel code from the Hub", ENV)
    return {"use_kernels": enabled()}


def add_flag(parser) -> None:
    """``--hub-kernels`` on an argparse parser (``args.hub_kernels``); call :func:`apply_flag` after parsing."""
    parser.add_argument("--hub-kernels", dest="hub_kernels", action="store_true", help=FLAG_HELP)


def apply_flag(args) -> None:
    if getattr(args, "hub_kernels", False):
        enable()
