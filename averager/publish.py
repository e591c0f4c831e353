"""Publishing a merged base: manifest and model card, a new immutable revision, the base pointer.

The manifest (``manifest.json``, a :class:`cortex.protocol.rounds.Manifest`) and the card (``README.md``)
hold no timestamps or local paths,
so publishing the same merge twice gives the same revision and commits nothing new. The upload is
public at once: a base pointer is not front-run (only the averager's hotkey may commit one), and a
private base repo would hide the current base from validators and miners while the pointer lands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import bittensor as bt

from cortex.atomic import write_text
from cortex.hub.store import ModelStore
from cortex.model.pointer import commit_pointer, model_hash
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import Competition
from cortex.protocol.rounds import GateResult, Manifest, ManifestInput, MergeReport, RoundInput

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"  # a cortex.protocol.rounds.Manifest


@dataclass(frozen=True)
class Published:
    repo: str
    revision: str
    block: int
    commitment: ModelCommitment


def manifest(competition: Competition, round_no: int, parent: str, inputs: Sequence[RoundInput],
             merge: MergeReport, gate: GateResult, averager: str) -> Manifest:
    """What the published base is made of; ``merge`` is ``averager.stream``'s report. ``model_hash`` is
    left empty: ``finalise`` sets it once the card is written (the card is a model file)."""
    return Manifest(
        competition=competition.id, round=round_no, parent=parent, method=merge.method, averager=averager,
        model_hash="", gate=gate, modules_merged=merge.modules_merged, dtype=merge.dtype,
        inputs=[ManifestInput(model=c.model_key, uid=c.uid, hotkey=c.hotkey, weight=c.weight, score=c.score,
                              incentive=c.incentive, commit_block=c.commit_block, clip=c.clip) for c in inputs],
        rank=merge.rank, energy_kept=merge.energy or None)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def model_card(man: Manifest, repo: str) -> str:
    gate, fmt = man.gate, _fmt
    rows = "\n".join(f"| `{i.model}` | {i.uid} | `{i.hotkey[:12]}…` | {i.weight:.4f} | "
                     f"{fmt(i.score)} |" for i in man.inputs)
    energy = man.energy_kept
    kept = (f"\nRank-{man.rank} delta: energy kept per module min {min(energy.values()):.4f}, mean "
            f"{sum(energy.values()) / len(energy):.4f} (all in manifest.json).\n" if energy else "")

    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [cortex, bittensor, merged, {man.competition}]
---

# {repo}: Cortex base, round {man.round}

The winning adapters of competition `{man.competition}` merged **exactly** ({man.method}) into
the parent base `{man.parent}` by the Cortex averager (hotkey `{man.averager}`).
{kept}
| adapter | uid | hotkey | weight | validators' mean reward |
| --- | --- | --- | --- | --- |
{rows}

## Gate

Scored with the validators' evaluation code on {gate.prompts} held-out prompts:

| model | mean reward |
| --- | --- |
| merged | {fmt(gate.merged_reward)} |
| parent base | {fmt(gate.base_reward)} |
| best single adapter (`{gate.best_single}`) | {fmt(gate.best_single_reward)} |

Margin {gate.margin:g}: {gate.reason}. Inputs, weights, gate metrics and the parent revision are
in `manifest.json`; earlier revisions stay in this repo (`cortex base rollback --to REVISION`).
"""


def finalise(folder: Path, man: Manifest, repo: str) -> Manifest:
    """Write the card, then the manifest with the folder's model hash, into the merged folder (atomically)."""
    write_text(folder / "README.md", model_card(man, repo))
    man = replace(man, model_hash=model_hash(folder))  # the card is a model file: hashed with the weights
    man.write(folder / MANIFEST)
    return man


def publish_base(sub: bt.Subtensor, wallet: bt.Wallet, netuid: int, store: ModelStore, competition: Competition,
                 repo: str, folder: Path) -> Published:
    """Upload ``folder`` as a new revision of ``repo`` and commit the base pointer to it."""
    man = Manifest.read(folder / MANIFEST)
    revision = store.upload(repo, folder, private=False, message=f"cortex averager: {competition.id} round "
                                                                 f"{man.round}")
    log.info("uploaded %s@%s", repo, revision[:12])
    commitment, block = commit_pointer(sub, wallet, netuid, competition, repo, revision, folder)
    return Published(repo, revision, block, commitment)
