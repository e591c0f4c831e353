"""A validator killed in the middle of evaluation resumes the round from its state file without
evaluating or downloading anything twice, and sets the same weights as one that was never killed."""

from datetime import date

import pytest
from chainkit import NETUID
from validator_fixtures import (
    BLOCKS_PER_DAY,
    COMP,
    SCHEDULE,
    START_DAY,
    CountingStore,
    build_artifacts,
    make_world,
    torch_threads,
)

from validator.config import ValidatorConfig
from cortex.eval.engines import EngineOptions, TransformersEngine
from validator.round import Parts, Validator
from validator.state import load

pytestmark = pytest.mark.slow


class Killed(Exception):
    """Stands in for SIGKILL: nothing after it runs."""


class CountingEngine:
    """The transformers engine, counting every evaluation it starts; dies before the Nth if asked."""

    def __init__(self, inner, started: list, die_at: int | None = None):
        self.inner, self.started, self.die_at, self.name = inner, started, die_at, inner.name

    def evaluate(self, rows, jobs, **kw):
        for job in jobs:
            if self.die_at is not None and len(self.started) == self.die_at:
                raise Killed(f"killed before evaluating {job.key}")
            self.started.append(job.key)
            yield from self.inner.evaluate(rows, [job], **kw)


def validator(world, name, state, store, started, die_at=None) -> Validator:
    cfg = ValidatorConfig(
        netuid=NETUID, wallet_name=name, wallet_path=str(world.chain.wallet_path), chain_path=str(world.chain.path),
        store=f"local:{world.store.root}", state=state, competitions=(str(world.competitions_file),),
        start_day=date.fromisoformat(START_DAY), blocks_per_day=BLOCKS_PER_DAY, wandb=False, once=True)

    def engine(base_dir, comp):
        inner = TransformersEngine(base_dir, options=EngineOptions(device="cpu"), max_new_tokens=comp.eval.max_new_tokens,
                                   batch_size=comp.eval.batch_size)
        return CountingEngine(inner, started, die_at)

    return Validator(Parts(cfg, world.chain.sub, world.chain.wallets[name], store, SCHEDULE, make_engine=engine,
                           wait_blocks=world.chain.advance))


def test_killed_mid_round_resumes_without_losing_or_repeating_work(tmp_path, tmp_path_factory):
    art = build_artifacts(tmp_path_factory.getbasetemp() / "validator-artifacts")
    world = make_world(tmp_path, art, bad=False)
    store, started, state = CountingStore(world.store), [], tmp_path / "v0" / "state.json"
    with torch_threads(1):
        with pytest.raises(Killed):
            validator(world, "validator0", state, store, started, die_at=3).run_round()
        saved = load(state)
        done = {key.split("@", 1)[1] for key in saved.progress.done}  # "competition@model"
        assert done == set(started) and len(started) == 3 and saved.round == 1  # base + 2 models, saved as done
        downloads_before = list(store.downloads)

        table = validator(world, "validator0", state, store, started).run_round()  # a fresh process, same state
    models = 4  # strong, medium, weak, copy (the copy has its own repo: its own evaluation)
    assert len(started) == models + 1 and len(set(started)) == len(started)  # each evaluated exactly once
    assert len(store.downloads) == len(set(store.downloads)) == models + 1  # the base and each adapter, once
    assert store.downloads[:len(downloads_before)] == downloads_before
    assert table["round"] == 1 and table["weights_set"]

    reference_started = []
    with torch_threads(1):  # a second validator, never killed, with its own state file
        other = validator(world, "validator1", tmp_path / "v1" / "state.json", CountingStore(world.store),
                          reference_started).run_round()
    assert len(reference_started) == models + 1
    assert other["weights"] == table["weights"] and len(table["weights"]) == models
    rows = world.chain.sub.weights.weights(NETUID)
    assert rows[world.uid("validator0")] == rows[world.uid("validator1")]
    assert other["competitions"][COMP]["eval_set"] == table["competitions"][COMP]["eval_set"]
