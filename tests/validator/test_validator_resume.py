"""A validator killed in the middle of generation resumes the round without generating any answer twice
(asserted on the outcome ledger and on the engine's calls) or downloading anything twice, and sets
the same weights as one that was never killed."""

from collections import Counter
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
from cortex.wandb_log import WandbConfig
from validator.round import Parts, Validator
from validator.ledger import Ledger
from validator.state import load

pytestmark = pytest.mark.slow


class Killed(Exception):
    """Stands in for SIGKILL: nothing after it runs."""


class CountingEngine:
    """The transformers engine, recording every (model, question) it is asked; dies before the Nth model if asked."""

    def __init__(self, inner, started: list, die_at: int | None = None):
        self.inner, self.started, self.die_at, self.name = inner, started, die_at, inner.name

    def evaluate(self, rows, jobs, **kw):
        for job in jobs:
            if self.die_at is not None and len(self.started) == self.die_at:
                raise Killed(f"killed before generating for {job.key}")
            self.started.append([(job.key, f"{COMP}:{r['asset']}:{r['cutoff']}:{r['horizon_days']}") for r in rows])
            yield from self.inner.evaluate(rows, [job], **kw)


def validator(world, name, state, store, started, die_at=None) -> Validator:
    cfg = ValidatorConfig(
        netuid=NETUID, wallet_name=name, wallet_path=str(world.chain.wallet_path), chain_path=str(world.chain.path),
        store=f"local:{world.store.root}", state=state, competitions=(str(world.competitions_file),),
        start_day=date.fromisoformat(START_DAY), blocks_per_day=BLOCKS_PER_DAY, wandb=WandbConfig(enabled=False), once=True)

    def engine(base_dir, comp):
        inner = TransformersEngine(base_dir, options=EngineOptions(device="cpu"), max_new_tokens=comp.eval.max_new_tokens,
                                   batch_size=comp.eval.batch_size)
        return CountingEngine(inner, started, die_at)

    return Validator(Parts(cfg, world.chain.sub, world.chain.wallets[name], store, SCHEDULE, make_engine=engine,
                           wait_blocks=world.chain.advance))


def test_killed_mid_round_resumes_without_generating_an_answer_twice(tmp_path, tmp_path_factory):
    art = build_artifacts(tmp_path_factory.getbasetemp() / "validator-artifacts")
    world = make_world(tmp_path, art, bad=False)
    store, started, state = CountingStore(world.store), [], tmp_path / "v0" / "state.json"
    with torch_threads(1):
        with pytest.raises(Killed):
            validator(world, "validator0", state, store, started, die_at=3).run_round()
        with Ledger(tmp_path / "v0" / "ledger.sqlite") as ledger:
            stored = {(e.model, e.question) for e in ledger.entries(COMP, "2024-01-01", "2024-12-31")}
        asked = {pair for call in started for pair in call}
        assert len(started) == 3 and stored == asked  # three models' batches, each stored when it finished
        assert load(state).round == 1 and load(state).progress.weights is None
        downloads_before = list(store.downloads)

        table = validator(world, "validator0", state, store, started).run_round()  # a fresh process, same state
    models = 4  # strong, medium, weak, copy (the copy has its own repo: its own answers)
    pairs = Counter(pair for call in started for pair in call)
    assert set(pairs.values()) == {1} and len(pairs) == (models + 1) * 8  # base and models, eight days, once each
    with Ledger(tmp_path / "v0" / "ledger.sqlite") as ledger:
        entries = ledger.entries(COMP, "2024-01-01", "2024-12-31")
    assert Counter((e.model, e.question) for e in entries) == pairs  # the ledger holds exactly what was generated
    assert len(store.downloads) == len(set(store.downloads)) == models + 1  # the base and each adapter, once
    assert store.downloads[:len(downloads_before)] == downloads_before
    assert table.round == 1 and table.weights_set

    reference_started = []
    with torch_threads(1):  # a second validator, never killed, with its own state and ledger
        other = validator(world, "validator1", tmp_path / "v1" / "state.json", CountingStore(world.store),
                          reference_started).run_round()
    assert Counter(pair for call in reference_started for pair in call) == pairs
    assert other.weights == table.weights and len(table.weights) == 3  # the copy earns nothing
    assert other.competitions[COMP].scores == table.competitions[COMP].scores
    rows = world.chain.sub.weights.weights(NETUID)
    assert rows[world.uid("validator0")] == rows[world.uid("validator1")]
