"""Publishing an adapter: check it, upload it private, commit the pointer, verify, make it public.

The order is the anti-front-running one of DESIGN.md §5:

1. the validators' own checks (``cortex.adapter.check_adapter``: files, config, type, rank,
   target modules, size, shapes, values) run on the exact folder to upload: a miner never
   publishes what validators would reject, and nothing is uploaded when they fail;
2. upload to the model store as a private repo → an immutable revision;
3. commit ``cx1:a:COMPETITION:REPO:REVISION:H(content ‖ hotkey)`` from the hotkey and wait for
   inclusion; within the chain's per-epoch space limit or its rate limit it waits and retries;
4. read the commitment back, decode it and verify it against the content hash and hotkey;
5. make the repo public.

Idempotent: when the chain already holds a commitment by this hotkey that verifies for this
content (:func:`already_published`, the one place that asks), nothing is uploaded or committed
again (the repo is made public if a crash left it private). If the commitment fails the repo stays
private and the error says why. A rate-limited commitment is recognised by the SDK's
``bt.ErrorCode.RATE_LIMITED``, never by the message's text.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import bittensor as bt

from cortex.chain.commitments import CommitFailed
from cortex.chain.commitments import publish as commit
from cortex.errors import CortexError
from cortex.hub.store import ModelStore
from cortex.protocol.commitment import CommitmentError, ModelCommitment
from cortex.protocol.competition import Competition
from cortex.protocol.hashing import content_hash

log = logging.getLogger(__name__)
CONFIG, WEIGHTS, CARD = "adapter_config.json", "adapter_model.safetensors", "README.md"


class PublishError(CortexError):
    """The adapter was not published; the message says what state things are in and what to do."""


@dataclass(frozen=True)
class Published:
    repo_id: str
    revision: str
    content_hash: str
    block: int
    commitment: ModelCommitment
    already: bool = False  # the chain already held this commitment: nothing was sent


def stage_upload(adapter: Path, dest: Path, card: str, base_repo: str, base_revision: str | None) -> Path:
    """The folder to upload: the adapter's config (naming the base repo and revision instead of a
    local path), its weights and the model card. Nothing else."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    config = json.loads((adapter / CONFIG).read_text())
    config["base_model_name_or_path"] = base_repo
    config["revision"] = base_revision
    (dest / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(adapter / WEIGHTS, dest / WEIGHTS)
    (dest / CARD).write_text(card, encoding="utf-8")
    return dest


def check_limits(folder: Path, base: Path, competition: Competition) -> Any:
    """Run the validators' checks on ``folder``; a rejection stops the publish before any upload."""
    from cortex.adapter import AdapterRejected, BaseSpec, check_adapter

    try:
        return check_adapter(folder, BaseSpec.from_files(base), competition.adapters)
    except AdapterRejected as exc:
        raise PublishError(f"not uploading: validators would reject this adapter ({exc.reason}): {exc.message}; "
                           f"the {competition.id} limits are {competition.adapters}") from None


def on_chain(sub, netuid: int, hotkey: str) -> ModelCommitment | None:
    """The hotkey's current commitment, decoded (None when absent or not a Cortex commitment)."""
    record = sub.identity.commitment(netuid, hotkey)
    if record is None:
        return None
    try:
        return ModelCommitment.decode(record.data)
    except CommitmentError:
        return None


def _commit(sub, wallet, netuid: int, commitment: ModelCommitment, retry_s: float) -> int:
    """Commit, waiting out the chain's rate limit; the space limit is waited out by ``commit``."""
    deadline = time.monotonic() + retry_s
    while True:
        try:
            return commit(sub, wallet, netuid, commitment, check_existing=False)  # already_published asked
        except CommitFailed as exc:
            if exc.code != bt.ErrorCode.RATE_LIMITED or time.monotonic() > deadline:
                raise
            log.warning("commitment rate limit: waiting a few blocks and retrying (%s)", exc)
            sub.wait_for_block(sub.block + 5, timeout=max(1.0, deadline - time.monotonic()))


def already_published(sub, netuid: int, hotkey: str, store: ModelStore, repo_id: str, folder: Path,
                      competition: Competition) -> Published | None:
    """This hotkey's commitment when it already points at ``folder``'s content in ``repo_id`` (the repo made
    public if a crash left it private); None when the adapter still has to be published."""
    digest = content_hash(folder)
    current = on_chain(sub, netuid, hotkey)
    if not (current is not None and current.kind == "adapter" and current.competition_id == competition.id
            and current.repo_id == repo_id and current.verify(digest, hotkey) and store.exists(repo_id, current.revision)):
        return None
    log.info("already published: %s@%s is this hotkey's commitment; nothing to send", repo_id, current.revision[:12])
    if store.is_private(repo_id):
        store.set_visibility(repo_id, private=False)
    block = sub.identity.commitment(netuid, hotkey).block
    return Published(repo_id, current.revision, digest, int(block), current, already=True)


def publish_adapter(sub, wallet, netuid: int, store: ModelStore, repo_id: str, folder: Path,
                    competition: Competition, *, gate: Callable[[], bool] | None = None,
                    retry_s: float = 1800.0) -> Published | None:
    """Upload ``folder`` private, commit it, verify the commitment, make the repo public; nothing is sent
    when this content is :func:`already_published`. ``gate`` (the miner's held-out check) is asked only
    when something would be sent; when it says no, nothing is and None is returned."""
    done = already_published(sub, netuid, wallet.hotkey.ss58_address, store, repo_id, folder, competition)
    if done is not None:
        return done
    if gate is not None and not gate():
        return None
    return _upload_and_commit(sub, wallet, netuid, store, repo_id, folder, competition, retry_s)


def _upload_and_commit(sub, wallet, netuid: int, store: ModelStore, repo_id: str, folder: Path,
                       competition: Competition, retry_s: float) -> Published:
    hotkey = wallet.hotkey.ss58_address
    digest = content_hash(folder)
    try:  # the repo id must fit the 128-byte commitment before anything is uploaded
        ModelCommitment.for_content(competition.id, repo_id, "0" * 40, digest, hotkey).encode()
    except CommitmentError as exc:
        raise PublishError(f"not uploading: {exc}") from None
    revision = store.upload(repo_id, folder, private=True, message=f"cortex adapter for {competition.id}")
    log.info("uploaded %s@%s (private)", repo_id, revision[:12])
    where = f"{repo_id}@{revision[:12]} was uploaded and stays private"
    try:
        commitment = ModelCommitment.for_content(competition.id, repo_id, revision, digest, hotkey)
        block = _commit(sub, wallet, netuid, commitment, retry_s)
    except (CommitFailed, CommitmentError) as exc:
        raise PublishError(f"the commitment failed: {exc}; {where}; fix the cause and run again") from None
    stored = on_chain(sub, netuid, hotkey)
    if stored != commitment or not stored.verify(digest, hotkey):
        raise PublishError(f"the commitment read back from chain does not verify for this adapter; {where}")
    store.set_visibility(repo_id, private=False)
    log.info("committed at block %d and made %s public", block, repo_id)
    return Published(repo_id, revision, digest, int(block), commitment)


def fetch_previous(sub, netuid: int, hotkey: str, store: ModelStore, competition: Competition,
                   base_revision: str | None, dest: Path) -> Path | None:
    """This hotkey's last published adapter for the competition, downloaded, when it was trained on
    the same base revision (an adapter for another base cannot be compared); otherwise None."""
    current = on_chain(sub, netuid, hotkey)
    if current is None or current.kind != "adapter" or current.competition_id != competition.id:
        return None
    try:
        path = store.download(current.repo_id, current.revision, dest, allow=[CONFIG, WEIGHTS],
                              max_bytes=competition.adapters.max_bytes)
    except CortexError as exc:
        log.warning("cannot fetch the last published adapter %s@%s: %s", current.repo_id, current.revision[:12], exc)
        return None
    trained_on = json.loads((path / CONFIG).read_text()).get("revision")
    if base_revision is not None and trained_on != base_revision:
        log.info("the last published adapter was trained on base %s, not %s: not compared", trained_on, base_revision)
        return None
    return path


def model_card(competition: Competition, base_repo: str, base_revision: str | None, cfg: Any,
               data: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The README uploaded with the adapter: base, competition, training data and metrics."""
    label = "SYNTHETIC market data (a seeded simulation, not real prices)" if data.get("synthetic") else "real market data"
    keys = ("heldout_reward_adapter", "heldout_reward_base", "heldout_parse_rate_adapter",
            "heldout_parse_rate_base", "heldout_prompts", "eval_loss_initial", "eval_loss_best", "train_loss_last",
            "grpo_reward_mean", "grpo_reward_last", "kto_loss_last")
    rows = "\n".join(f"| {k} | {metrics[k]} |" for k in keys if metrics.get(k) is not None)
    return f"""---
library_name: peft
base_model: {base_repo}
tags: [cortex, bittensor, {cfg.finetuning_type}, {competition.id}]
---

# Cortex adapter for `{competition.id}`

A {cfg.finetuning_type.upper()} adapter (rank {cfg.lora_rank}, alpha {cfg.alpha:g}, targets
{', '.join(cfg.targets(competition.adapters.target_modules))}) of **{base_repo}** at revision
`{base_revision}`, trained by a Cortex miner with stages {' → '.join(cfg.stage)}.

| | |
| --- | --- |
| competition | `{competition.id}` (definition sha256 `{competition.fingerprint()[:16]}…`) |
| base | `{base_repo}@{base_revision}` |
| training data | {data.get('source')}: {label}; assets {', '.join(data.get('assets') or [])}; horizons {data.get('horizons')} days; teacher `{data.get('teacher')}` |
| rows | {data.get('rows')} |
| cutoffs | {data.get('cutoffs')} |

## Metrics

Held-out rewards are the mean `cortex.reward` over the held-out split's prompts, scored by
`cortex.eval` (greedy decoding, the competition's token budget): the code validators run.

| metric | value |
| --- | --- |
{rows}

## Use

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
base = AutoModelForCausalLM.from_pretrained("{base_repo}", revision="{base_revision}")
model = PeftModel.from_pretrained(base, "THIS_REPO", revision="THIS_REVISION")
```
"""
