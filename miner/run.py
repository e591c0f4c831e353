"""One mining round, end to end: base → data → train → held-out gate → check → publish.

``run_round`` syncs the competition's base (the averager's newest base pointer when the
competition follows one, else its pinned revision; ``model_name_or_path`` / ``--base`` names a
local folder instead), builds or reuses the dataset, runs the configured stages (SFT, then GRPO or
KTO, then calibrate), scores the adapter against the base and the miner's last published adapter on the held-out
split, writes ``metrics.json`` (and ``training_loss.png``), and publishes when the adapter wins.
``--offline`` stops before anything touches a chain or a store. Under ``accelerate launch`` every
process trains; only the main process scores, writes and publishes.
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cortex.errors import CortexError
from cortex.protocol.competition import Competition
from cortex.wandb_log import WandbConfig, WandbLog
from miner import data as D
from miner.backends import check_backend, has_gpu
from miner.config import MinerConfig, TrainConfig, from_dict
from miner.heldout import decide, score_heldout
from miner.limits import check_planned, check_size
from miner.metrics import plot_loss, read_metrics, write_metrics

if TYPE_CHECKING:
    from cortex.model.pointer import BaseRef

log = logging.getLogger(__name__)


def local_base(path: Path, competition: Competition) -> BaseRef:
    """A local base folder, named as the competition's base repo, its revision the folder's model hash."""
    from cortex.model.loading import check_model_dir
    from cortex.model.pointer import local_base as local_ref

    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise CortexError(f"base folder {path} does not exist: build one with `cortex base bootstrap --out {path}`")
    check_model_dir(path)
    return local_ref(path, competition.base.repo)


def sync_base(opts: MinerConfig, cfg: TrainConfig, sub=None, store=None) -> BaseRef:
    """The base to train on: a local folder, the averager's pointer, or the pinned revision."""
    folder = opts.base or cfg.model_name_or_path
    if folder:
        return local_base(Path(folder), opts.competition)
    comp = opts.competition
    if opts.no_chain:
        raise CortexError("--offline needs a local base: set model_name_or_path in the config or pass --base DIR "
                          "(the folder `cortex base bootstrap --out DIR` writes)")
    from cortex.model.pointer import current_base

    ref = current_base(sub, opts.netuid, comp, store)
    if ref is None:
        raise CortexError(f"competition {comp.id} has no base yet: no base pointer on chain and no pinned revision; "
                          "wait for the averager (or the subnet owner) to commit one, or pass --base DIR")
    repo, revision, block = ref.repo, ref.revision, ref.block
    if block is not None:
        log.info("following the base pointer committed at block %d: %s@%s", block, repo, revision[:12])
    elif comp.base.revision is None:  # the genesis base, as `cortex base bootstrap --store` published it
        log.warning("no base pointer on chain yet: using the newest %s in the store (%s), the bootstrap's",
                    repo, revision[:12])
    return ref.fetch(store)


def train(cfg: TrainConfig, opts: MinerConfig, base: BaseRef, dd, report_to: str) -> dict[str, Any]:
    """Run the configured stages in order; each continues the adapter the previous one saved."""
    from miner.calibrate import train_calibrate
    from miner.grpo import train_grpo
    from miner.kto import train_kto
    from miner.sft import train_sft

    out, targets = opts.output_dir, check_planned(cfg, opts.competition)
    histories, summaries = {}, {}
    adapter = Path(cfg.adapter_name_or_path).expanduser() if cfg.adapter_name_or_path else None
    for stage in cfg.stage:
        if stage == "sft":
            train_rows, val_rows = D.sft_rows(dd, cfg)
            result = train_sft(cfg, base.path, train_rows, val_rows, out, targets=targets, adapter=adapter,
                               report_to=report_to, resume=opts.resume)
        elif stage == "calibrate":
            result = train_calibrate(cfg, base.path, D.calibration_questions(dd, cfg), opts.competition, out,
                                     targets=targets, adapter=adapter, report_to=report_to, resume=opts.resume)
        elif stage == "grpo":
            result = train_grpo(cfg, base.path, D.preference_rows(dd, cfg), opts.competition, out, targets=targets,
                                adapter=adapter, report_to=report_to, resume=opts.resume)
        else:
            result = train_kto(cfg, base.path, D.preference_rows(dd, cfg), out, targets=targets, adapter=adapter,
                               report_to=report_to, resume=opts.resume)
        adapter = out / "adapter"
        histories[stage], summaries[stage] = result.log_history, result.summary
    gc.collect()  # the trainers are gone: give their GPU memory back before the held-out check loads the base
    if has_gpu():
        import torch

        torch.cuda.empty_cache()
    return {"histories": histories, "summaries": summaries}


def flat_metrics(summaries: dict[str, dict]) -> dict[str, Any]:
    """Stage summaries under ``stages``, plus the SFT losses at the top level (``RunMetrics``' fields)."""
    out: dict[str, Any] = {"stages": {stage: dict(s) for stage, s in summaries.items()}}
    for k in ("eval_loss_initial", "eval_loss_best", "eval_loss_final", "train_loss_first", "train_loss_last"):
        if k in summaries.get("sft", {}):
            out[k] = summaries["sft"][k]
    return out


def run_round(opts: MinerConfig, cfg: TrainConfig, *, refresh_data: bool = False) -> dict[str, Any]:
    """One round; returns the metrics written to ``metrics.json`` (empty on non-main processes)."""
    from accelerate import PartialState

    started = time.time()
    out = opts.output_dir.resolve()
    metrics: dict[str, Any] = read_metrics(opts.push_only) if opts.push_only else {}
    if opts.push_only is None:  # before any work: every competition limit, then qlora/unsloth without a GPU
        check_planned(cfg, opts.competition)
        check_backend(cfg)
    elif "config" in metrics:  # publish with the configuration the adapter was trained with (its card says so)
        cfg = from_dict(metrics["config"], f"{opts.push_only}/metrics.json")
    sub = store = wallet = None
    if not opts.no_chain:
        from cortex.chain.registration import require_registered
        from cortex.model.pointer import check_pinned

        sub, store, wallet = opts.open_chain(), opts.open_store(), opts.open_wallet()
        require_registered(sub, opts.netuid, wallet.hotkey.ss58_address, opts.network, role="miner")
        check_pinned(opts.competition, store)  # a pinned base the store does not list: before any training
    state = PartialState(cpu=not has_gpu())  # several CPU processes: gloo (see configs/accelerate/cpu-2proc.yaml)
    out.mkdir(parents=True, exist_ok=True)
    wandb = WandbLog(opts.wandb if cfg.report_to == "wandb" else WandbConfig(enabled=False), folder=out,
                     project=cfg.wandb_project, name=f"miner-{opts.competition.id}")
    report_to = wandb.report_to()  # the trainers log every step through transformers' wandb callback
    source = D.resolve_source(cfg, opts.source)
    with state.main_process_first():
        base = sync_base(opts, cfg, sub, store)
    if opts.push_only is None:
        check_size(cfg, opts.competition, base.path)  # the limit that needs the base's shapes, still before training
    data = _Data(cfg, source, out, refresh_data, state)
    if opts.push_only is None:
        trained = train(cfg, opts, base, data.splits, report_to)
        metrics = flat_metrics(trained["summaries"])
        if cfg.plot_loss and state.is_main_process:
            plot_loss(out, trained["histories"])
    if not state.is_main_process:
        return {}
    adapter = _adapter_dir(opts.push_only) if opts.push_only else out / "adapter"
    reuse = metrics.get("base") == f"{base.repo}@{base.revision}" and metrics.get("heldout_reward_adapter") is not None
    metrics.update(base=f"{base.repo}@{base.revision}", base_path=str(base.path), competition=opts.competition.id,
                   config=cfg.to_dict(), adapter=str(adapter), processes=state.num_processes)
    if not reuse:  # --push-only keeps the held-out numbers (and data summary) of its run when the base is the same
        metrics.update(data=data.summary, source=source)
        metrics.update(score_heldout(base.path, {"base": None, "adapter": adapter}, data.heldout,
                                     opts.competition, max_new_tokens=cfg.heldout_max_new_tokens,
                                     device=cfg.heldout_device))
    metrics.update(_check_and_publish(opts, cfg, base, adapter, dict(metrics), data, sub, store, wallet))
    metrics["seconds"] = round(time.time() - started, 1)
    write_metrics(out, metrics)
    wandb.finish(metrics)  # the final numbers in the run's summary
    log.info("round done: adapter %s vs base %s on %s held-out prompts; %s", metrics.get("heldout_reward_adapter"),
             metrics.get("heldout_reward_base"), metrics.get("heldout_prompts"),
             metrics.get("published") or metrics.get("publish_reason"))
    return metrics


class _Data:
    """The dataset, built (or reused) on first use: ``--push-only`` with reusable numbers never builds it."""

    def __init__(self, cfg: TrainConfig, source: str, out: Path, refresh: bool, state) -> None:
        self.cfg, self.source, self.out, self.refresh, self.state = cfg, source, out, refresh, state
        self._loaded: tuple[Any, dict] | None = None

    def _load(self) -> tuple[Any, dict]:
        if self._loaded is None:
            with self.state.main_process_first():
                self._loaded = D.prepare(self.cfg, self.source, self.out, refresh=self.refresh)
        return self._loaded

    @property
    def splits(self):
        return self._load()[0]

    @property
    def summary(self) -> dict[str, Any]:
        return D.card_summary(self._load()[1])

    @property
    def heldout(self) -> list[dict]:
        return D.heldout_rows(self.splits, self.cfg)


def _adapter_dir(push_only: Path) -> Path:
    """``--push-only`` takes an output dir (with ``adapter/`` and ``metrics.json``) or an adapter folder."""
    folder = push_only / "adapter" if (push_only / "adapter").is_dir() else push_only
    if not (folder / "adapter_config.json").is_file():
        raise CortexError(f"--push-only {push_only}: no adapter_config.json there or in its adapter/ folder")
    return folder


def _check_and_publish(opts, cfg, base, adapter, metrics, data, sub, store, wallet) -> dict[str, Any]:
    """The validators' checks on the upload folder; online, the publish gate and publishing."""
    from miner.publish import PublishError, check_limits, fetch_previous, model_card, publish_adapter, stage_upload

    comp = opts.competition
    text = model_card(comp, base.repo, base.revision, cfg, metrics["data"], metrics)
    upload = stage_upload(adapter, opts.output_dir / "upload", text, base.repo, base.revision)
    try:
        checked = check_limits(upload, base.path, comp)
    except PublishError as exc:
        if sub is None:
            return {"adapter_check": str(exc), "publish_decision": False, "publish_reason": "offline"}
        raise
    result: dict[str, Any] = {"adapter_check": "ok", "adapter_type": checked.adapter_type, "adapter_rank": checked.rank,
                              "adapter_bytes": checked.n_bytes, "adapter_params": checked.n_params,
                              "upload_content_hash": checked.content_hash}
    if sub is None:
        gate = decide(metrics, opts.force)
        return {**result, "publish_decision": False, "heldout_gate_passed": gate.publish,
                "publish_reason": f"offline: nothing published (the gate says: {gate.reason})"}
    hotkey, repo_id = wallet.hotkey.ss58_address, cfg.hub_model_id or f"{wallet.name}/{comp.id}"

    def gate() -> bool:  # asked only when this content is not already this hotkey's commitment
        previous = fetch_previous(sub, opts.netuid, hotkey, store, comp, base.revision, opts.output_dir / "previous")
        if previous is not None:
            metrics.update(score_heldout(base.path, {"previous": previous}, data.heldout, comp,
                                         max_new_tokens=cfg.heldout_max_new_tokens, device=cfg.heldout_device))
            result.update({k: v for k, v in metrics.items() if "previous" in k})
        result.update(_decision(metrics, opts.force))
        return result["publish_decision"]

    published = publish_adapter(sub, wallet, opts.netuid, store, repo_id, upload, comp, gate=gate)
    if published is None:
        return result
    if published.already:
        result.update(publish_decision=True, publish_reason="already committed by this hotkey")
    result.update(published=f"{published.repo_id}@{published.revision}", published_block=published.block,
                  commitment=published.commitment.encode(), already_published=published.already)
    return result


def _decision(metrics: dict[str, Any], force: bool) -> dict[str, Any]:
    d = decide(metrics, force)
    return {"publish_decision": d.publish, "publish_reason": d.reason}


def run(opts: MinerConfig, cfg: TrainConfig) -> dict[str, Any]:
    """One round, or with ``--loop`` a round every ``loop_interval_s`` against fresh data and the newest base."""
    if not opts.loop:
        return run_round(opts, cfg)
    rounds, metrics = 0, {}
    while opts.loop_rounds is None or rounds < opts.loop_rounds:
        shutil.rmtree(opts.output_dir / "checkpoints", ignore_errors=True)  # each round trains afresh
        try:
            metrics = run_round(opts, cfg, refresh_data=True)
        except CortexError as exc:
            log.error("round %d failed: %s", rounds + 1, exc)
        rounds += 1
        if opts.loop_rounds is None or rounds < opts.loop_rounds:
            log.info("next round in %.0f s", opts.loop_interval_s)
            time.sleep(opts.loop_interval_s)
    return metrics
