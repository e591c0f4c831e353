"""Classic Yuma Consensus: one tempo's ``epoch`` of subtensor as a pure, vectorised numpy function.

Mirrors ``Pallet::epoch`` in opentensor/subtensor ``pallets/subtensor/src/epoch/run_epoch.rs`` (the
sparse production path, with Yuma3 and liquid alpha off) and the helpers it calls in
``pallets/subtensor/src/epoch/math.rs``. The chain computes in I32F32 fixed point; we compute in
float64, so stored u16 values agree with the chain's to within one unit of the last place.
Commit-reveal weight masking is not modelled. See docs/yuma.md for the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

U16_MAX = 65535


@dataclass(frozen=True)
class YumaParams:
    """Subnet hyperparameters the epoch reads, in the chain's own units (defaults: subtensor's)."""

    kappa: int = 32767  # u16 fraction of stake that forms the consensus majority (~0.5)
    bonds_moving_average: int = 900_000  # of 1_000_000: the weight the *old* bonds keep
    bonds_penalty: int = U16_MAX  # u16: 0 bonds on raw weights, 65535 on clipped weights
    tempo: int = 360  # blocks per epoch; bonds to uids registered within the last tempo drop
    activity_cutoff: int = 5000  # blocks since last_update after which a uid is inactive
    max_allowed_validators: int = 128  # top-k stake gets a validator permit next epoch
    stake_threshold: float = 0.0  # stake (same units as `stake`) below which stake counts as 0


@dataclass(frozen=True)
class ChainEpoch:
    """The epoch's outputs as subtensor stores them (``run_epoch.rs``, "Value storage")."""

    active: np.ndarray  # bool
    validator_permit: np.ndarray  # bool, the new permits
    stake_weight: np.ndarray  # u16 floor(x*65535) of these proportions:
    rank: np.ndarray  #          sum-normalised (== incentive)
    trust: np.ndarray  #         raw proportion in [0, 1]
    consensus: np.ndarray  #     raw proportion in [0, 1]
    incentive: np.ndarray  #     sum-normalised
    dividends: np.ndarray  #     sum-normalised
    validator_trust: np.ndarray  # raw proportion in [0, 1]
    pruning_scores: np.ndarray  # u16, max-upscaled and rounded (max = 65535)
    emission: np.ndarray  # u64 rao, floor (combined: server + validator)
    server_emission: np.ndarray  # u64 rao, floor (paid to the uid as a miner)
    validator_emission: np.ndarray  # u64 rao, floor (paid to the uid as a validator)
    bonds: np.ndarray  # u16 n x n, column max-upscaled; rows without a new permit are cleared


@dataclass(frozen=True)
class EpochResult:
    """Float outputs of one epoch; ``to_chain()`` converts them to the stored representation."""

    active: np.ndarray  # bool: last_update + activity_cutoff >= current_block
    validator_permit: np.ndarray  # bool: new permits, top-k non-zero stake
    stake_weight: np.ndarray  # threshold-filtered stake, sum-normalised
    active_stake: np.ndarray  # stake of active, permitted validators, sum-normalised
    rank: np.ndarray  # normalised ranks (the chain stores them after normalising: == incentive)
    trust: np.ndarray  # ranks / preranks, in [0, 1]
    consensus: np.ndarray  # stake-weighted kappa-median of each column of weights
    incentive: np.ndarray  # sum 1 (or all 0)
    dividends: np.ndarray  # sum 1 (or all 0)
    validator_trust: np.ndarray  # row sums of clipped weights, in [0, 1]
    pruning_scores: np.ndarray  # normalised combined emission, sum 1
    server_emission: np.ndarray  # this tempo's emission paid as incentive (miners)
    validator_emission: np.ndarray  # this tempo's emission paid as dividends (validators)
    emission: np.ndarray  # server + validator share, sums to the tempo's emission
    bonds: np.ndarray  # new bonds, column max-upscaled to [0, 1], cleared rows without permit

    def to_chain(self) -> ChainEpoch:
        """u16/u64 vectors exactly as ``run_epoch.rs`` writes them to storage."""
        return ChainEpoch(
            active=self.active.copy(),
            validator_permit=self.validator_permit.copy(),
            stake_weight=proportion_to_u16(self.stake_weight),
            rank=proportion_to_u16(self.rank),
            trust=proportion_to_u16(self.trust),
            consensus=proportion_to_u16(self.consensus),
            incentive=proportion_to_u16(self.incentive),
            dividends=proportion_to_u16(self.dividends),
            validator_trust=proportion_to_u16(self.validator_trust),
            pruning_scores=max_upscale_to_u16(self.pruning_scores),
            emission=to_rao(self.emission),
            server_emission=to_rao(self.server_emission),
            validator_emission=to_rao(self.validator_emission),
            bonds=proportion_to_u16(self.bonds),
        )


# ----------------------------------------------------------------------------- u16 conversions


def proportion_to_u16(x: np.ndarray) -> np.ndarray:
    """``fixed_proportion_to_u16``: saturating, truncating x * 65535.

    A 1e-6 guard keeps float64 rounding (0.4 + 0.3 + 0.2 + 0.1 < 1) from losing a unit.
    """
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    return np.minimum(np.floor(x * U16_MAX + 1e-6), U16_MAX).astype(np.uint16)


def max_upscale_to_u16(x: np.ndarray) -> np.ndarray:
    """``vec_max_upscale_to_u16``: scale so the max is 65535, rounding half away from zero.

    The chain also stores weights this way (``set_weights`` max-upscales each row).
    """
    x = np.clip(np.asarray(x, np.float64), 0.0, None)
    top = x.max() if x.size else 0.0
    if top == 0:
        return np.zeros(x.shape, np.uint16)
    return np.minimum(np.floor(x * U16_MAX / top + 0.5), U16_MAX).astype(np.uint16)


def to_rao(x: np.ndarray) -> np.ndarray:
    """``saturating_to_num::<u64>`` of an emission: truncate toward zero."""
    return np.floor(np.clip(np.asarray(x, np.float64), 0.0, 2.0**64 - 1)).astype(np.uint64)


# ------------------------------------------------------------------------ math.rs equivalents


def normalize(x: np.ndarray) -> np.ndarray:
    """``inplace_normalize``: divide by the sum unless the sum is zero."""
    total = x.sum()
    return x / total if total > 0 else x.copy()


def _normalize_axis(m: np.ndarray, axis: int) -> np.ndarray:
    """``inplace_row_normalize`` (axis=1) / ``inplace_col_normalize`` (axis=0); zero sums stay."""
    total = m.sum(axis=axis, keepdims=True)
    return np.divide(m, total, out=np.zeros_like(m), where=total > 0)


def _col_max_upscale(m: np.ndarray) -> np.ndarray:
    """``inplace_col_max_upscale``: each column divided by its max, zero columns stay."""
    top = m.max(axis=0, keepdims=True) if m.size else np.zeros((1, m.shape[1]))
    return np.divide(m, top, out=np.zeros_like(m), where=top > 0)


def is_topk_nonzero(x: np.ndarray, k: int) -> np.ndarray:
    """``is_topk_nonzero``: non-zero entries outside the n-k smallest (ascending stable sort)."""
    keep = x != 0
    if len(x) < k:
        return keep
    keep[np.argsort(x, kind="stable")[: len(x) - k]] = False
    return keep


def weighted_median_col(stake: np.ndarray, score: np.ndarray, majority: float) -> np.ndarray:
    """``weighted_median_col_sparse``: stake-weighted kappa-median of each column.

    Only rows with stake > 0 vote (their stake renormalised to sum S). With minority = S - majority
    the chain's pivot search returns the value v whose stake interval [C(<v), C(<=v)) contains
    minority, i.e. the smallest v with C(<=v) > minority; minority < 0 gives the column minimum,
    minority >= S the maximum. An exact tie at the boundary goes to the *higher* value.
    """
    n_cols = score.shape[1]
    voters = stake > 0
    if not voters.any():
        return np.zeros(n_cols)
    s = normalize(stake[voters])
    minority = s.sum() - majority
    votes = score[voters]
    order = np.argsort(votes, axis=0, kind="stable")
    sorted_votes = np.take_along_axis(votes, order, axis=0)
    above = np.cumsum(s[order], axis=0) > minority
    first = np.where(above.any(axis=0), above.argmax(axis=0), len(s) - 1)
    return sorted_votes[first, np.arange(n_cols)]


# ----------------------------------------------------------------------------------- the epoch


def epoch(
    stake: np.ndarray,
    weights: np.ndarray,
    bonds: np.ndarray | None,
    validator_permit: np.ndarray,
    last_update: np.ndarray,
    block_at_registration: np.ndarray,
    current_block: int,
    emission: float = 0.0,
    params: YumaParams = YumaParams(),
    owner_uid: int | None = None,
) -> EpochResult:
    """Run classic Yuma Consensus for one tempo of a subnet with n uids.

    stake: (n,) stake weight per uid (any unit; normalised here). weights: (n, n) row i = the
    weights uid i set, as stored (u16, row max-upscaled) or any non-negative floats. bonds: (n, n)
    previous bonds as stored (u16, column max-upscaled) or None. validator_permit: (n,) the current
    permits. last_update, block_at_registration: (n,) block numbers. emission: this tempo's
    emission to split (rao). owner_uid: the subnet owner's uid, whose self-weight is kept.
    """
    stake = np.asarray(stake, np.float64)
    n = stake.shape[0]
    weights = np.asarray(weights, np.float64).reshape(n, n)
    bonds = np.zeros((n, n)) if bonds is None else np.asarray(bonds, np.float64).reshape(n, n)
    permit = np.asarray(validator_permit, bool).reshape(n)
    last_update = np.asarray(last_update, np.int64).reshape(n)
    registered = np.asarray(block_at_registration, np.int64).reshape(n)
    for name, arr in (("stake", stake), ("weights", weights), ("bonds", bonds)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"yuma.epoch: {name} must be finite and non-negative")

    # == Active & updated == (inactive: last_update + activity_cutoff < current_block)
    active = last_update + params.activity_cutoff >= current_block

    # == Stake == stake under the threshold counts as zero; normalise.
    stake_weight = normalize(np.where(stake >= params.stake_threshold, stake, 0.0))

    # == Validator permits == the new permits go to the top-k non-zero stake.
    new_permit = is_topk_nonzero(stake_weight, params.max_allowed_validators)

    # == Active stake == mask inactive and non-permitted uids, normalise.
    active_stake = normalize(stake_weight * (active & permit))

    # == Weights == permitted rows only, no self-weight (but the owner's), no weights set by i at
    # or before uid j (re)registered, then row-normalise.
    w = weights * permit[:, None]
    diag = np.arange(n)
    kept = w[owner_uid, owner_uid] if owner_uid is not None and 0 <= owner_uid < n else None
    w[diag, diag] = 0.0
    if kept is not None:
        w[owner_uid, owner_uid] = kept
    w[last_update[:, None] <= registered[None, :]] = 0.0
    w = _normalize_axis(w, axis=1)

    # == Consensus, validator trust ==
    preranks = active_stake @ w
    consensus = weighted_median_col(active_stake, w, params.kappa / U16_MAX)
    clipped = np.minimum(w, consensus[None, :])
    validator_trust = clipped.sum(axis=1)

    # == Ranks, trust, incentive ==
    ranks = active_stake @ clipped
    trust = np.divide(ranks, preranks, out=np.zeros(n), where=preranks != 0)
    incentive = normalize(ranks)

    # == Bonds and dividends == (original Yuma: the `else` branch of `Yuma3On`)
    penalty = params.bonds_penalty / U16_MAX
    w_bonds = w + penalty * (clipped - w)  # `interpolate`: raw weights -> clipped weights
    last_tempo = max(current_block - params.tempo, 0)
    old = bonds * (last_tempo > registered)[None, :]  # drop bonds to recently (re)registered uids
    old = _normalize_axis(old, axis=0)
    delta = _normalize_axis(w_bonds * active_stake[:, None], axis=0)  # dB = W o S
    alpha = 1.0 - params.bonds_moving_average / 1_000_000  # weight of the *new* bonds
    ema = _normalize_axis(alpha * delta + (1.0 - alpha) * old, axis=0)
    dividends = normalize(ema @ incentive)  # d_i = sum_j b_ij * incentive_j
    new_bonds = _col_max_upscale(ema) * new_permit[:, None]

    # == Emission and pruning scores == incentive and dividends each sum to 1: a 50/50 split.
    combined = incentive + dividends
    total = combined.sum()
    if total > 0:
        server, validator, combined = incentive / total, dividends / total, combined / total
    else:  # no weights set, outdated weights or only self-weights: pay by stake
        server = incentive
        validator = stake_weight if active_stake.sum() == 0 else active_stake
        combined = validator

    return EpochResult(
        active=active,
        validator_permit=new_permit,
        stake_weight=stake_weight,
        active_stake=active_stake,
        rank=incentive.copy(),
        trust=trust,
        consensus=consensus,
        incentive=incentive,
        dividends=dividends,
        validator_trust=validator_trust,
        pruning_scores=combined.copy(),
        server_emission=server * emission,
        validator_emission=validator * emission,
        emission=combined * emission,
        bonds=new_bonds,
    )
