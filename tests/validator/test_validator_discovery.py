"""Discovery: which commitments a round scores, which it ignores and why, and which base it uses."""

from datetime import date

from cortex.chain.commitments import OnChainCommitment
from cortex.eval.evalset import SimulatedClock, eligible_before
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import CORTEX_TINY, BaseModelRef
from validator.discovery import Snapshot, candidates, resolve_base

CLOCK = SimulatedClock(date(2024, 3, 1), blocks_per_day=10)
HASH = "ab" * 32


def record(hotkey, block, commitment=None, raw="", error=None):
    return OnChainCommitment(hotkey, None, block, raw or (commitment.encode() if commitment else ""), commitment, error)


def adapter(hotkey, competition="cortex-tiny", repo="alice/model", kind="adapter"):
    return ModelCommitment.for_content(competition, repo, HASH, HASH, hotkey, kind=kind)


def snapshot(*records, owner="owner"):
    uids = {r.hotkey: i for i, r in enumerate(records)}
    uids[owner] = 99
    return Snapshot(block=1000, tempo=100, owner_hotkey=owner, uids=uids, commitments=tuple(records))


def test_candidates_and_ignored_with_reasons():
    before = eligible_before(CLOCK, CLOCK.day(1000), CORTEX_TINY.eval.eligibility_delay_blocks)  # block 995: day 100 closes at 1000, delay 5
    assert before == 995
    snap = snapshot(
        record("good", 10, adapter("good")),
        record("late", before, adapter("late")),
        record("junk", 10, raw="cx1:a:nope", error="expected 6 fields"),
        record("other", 10, adapter("other", competition="cortex-70b")),
        record("unknown", 10, adapter("unknown", competition="my-comp")),
        record("owner", 10, adapter("owner", kind="base")),
    )
    found, ignored = candidates(snap, CORTEX_TINY, before, {"cortex-tiny", "cortex-70b"})
    assert [c.hotkey for c in found] == ["good"]
    assert found[0].model_key == f"alice/model@{HASH}" and found[0].uid == 0
    reasons = {i.hotkey: i.reason for i in ignored}
    assert reasons == {"late": "not_eligible", "junk": "malformed_commitment", "unknown": "inactive_competition"}
    # 'other' is scored in cortex-70b's own pass; the owner's base pointer is not a model


def test_deregistered_hotkeys_are_skipped():
    snap = snapshot(record("gone", 10, adapter("gone")))
    snap.uids.pop("gone")
    assert candidates(snap, CORTEX_TINY, 995, {"cortex-tiny"}) == ([], [])


def test_base_pointer_newest_from_the_owner_or_the_averager():
    old = ModelCommitment.for_content("cortex-tiny", "cortex/tiny-llama", "01" * 32, "01" * 32, "owner", kind="base")
    new = ModelCommitment.for_content("cortex-tiny", "cortex/tiny-llama", "02" * 32, "02" * 32, "owner", kind="base")
    fake = ModelCommitment.for_content("cortex-tiny", "evil/base", "03" * 32, "03" * 32, "mallory", kind="base")
    snap = snapshot(record("owner", 5, old), record("mallory", 9, fake))
    assert resolve_base(snap, CORTEX_TINY).revision == "01" * 32  # mallory is not the owner
    snap = snapshot(record("owner", 7, new), record("mallory", 9, fake))
    choice = resolve_base(snap, CORTEX_TINY)
    assert (choice.repo, choice.revision, choice.hotkey) == ("cortex/tiny-llama", "02" * 32, "owner")
    assert resolve_base(snapshot(), CORTEX_TINY) is None  # built-in genesis base, no pointer yet

    class Store:
        def revisions(self, repo):
            return {"cortex/tiny-llama": ["09" * 32, "08" * 32]}[repo]

    genesis = resolve_base(snapshot(), CORTEX_TINY, Store())  # what `cortex base bootstrap --store` published
    assert (genesis.revision, genesis.commitment) == ("09" * 32, None)

    from dataclasses import replace

    averaged = replace(CORTEX_TINY, base=BaseModelRef(repo="cortex/tiny-llama", builtin=True, follow_pointer=True,
                                                      averager_hotkey="mallory"))
    assert resolve_base(snap, averaged).repo == "evil/base"  # whoever the competition names
    pinned = replace(CORTEX_TINY, base=BaseModelRef(repo="org/base", revision="0a" * 20))
    assert resolve_base(snap, pinned).revision == "0a" * 20
