"""Tests for cortex.localchain.yuma: classic Yuma Consensus against a slow, loop-based reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cortex.localchain.yuma import (
    U16_MAX,
    YumaParams,
    epoch,
    is_topk_nonzero,
    max_upscale_to_u16,
    proportion_to_u16,
    weighted_median_col,
)

# ------------------------------------------------------------------ slow reference (plain loops)


def ref_normalize(x):
    total = sum(x)
    return [v / total for v in x] if total != 0 else list(x)


def ref_median(stake, score, idx, minority, lo, hi):
    """The chain's mid-pivot binary search (math.rs `weighted_median`), written out recursively."""
    if not idx:
        return 0.0
    if len(idx) == 1:
        return score[idx[0]]
    pivot = score[idx[len(idx) // 2]]
    lo_stake, hi_stake, lower, upper = 0.0, 0.0, [], []
    for i in idx:
        if score[i] == pivot:
            continue
        if score[i] < pivot:
            lo_stake += stake[i]
            lower.append(i)
        else:
            hi_stake += stake[i]
            upper.append(i)
    if lo + lo_stake <= minority < hi - hi_stake:
        return pivot
    if minority < lo + lo_stake and lower:
        return ref_median(stake, score, lower, minority, lo, lo + lo_stake)
    if hi - hi_stake <= minority and upper:
        return ref_median(stake, score, upper, minority, hi - hi_stake, hi)
    return pivot


def ref_epoch(stake, W, B, permit, last_update, registered, block, emission=0.0, kappa=32767,
              bma=900_000, penalty=U16_MAX, tempo=360, cutoff=5000, max_validators=128, owner=None):
    n = len(stake)
    rows = range(n)
    active = [last_update[i] + cutoff >= block for i in rows]
    s = ref_normalize([float(x) for x in stake])
    order = sorted(rows, key=lambda i: s[i])  # Python's sort is stable too
    new_permit = [s[i] != 0 for i in rows]
    if n >= max_validators:
        for i in order[: n - max_validators]:
            new_permit[i] = False
    a = ref_normalize([s[i] if active[i] and permit[i] else 0.0 for i in rows])

    w = [[0.0] * n for _ in rows]
    for i in rows:
        for j in rows:
            if not permit[i] or (i == j and i != owner) or last_update[i] <= registered[j]:
                continue
            w[i][j] = float(W[i][j])
        w[i] = ref_normalize(w[i]) if sum(w[i]) > 0 else w[i]

    preranks = [sum(w[i][j] * a[i] for i in rows) for j in rows]
    voters = [i for i in rows if a[i] > 0]
    vs = ref_normalize([a[i] for i in voters])
    total = sum(vs)
    consensus = [ref_median(vs, [w[i][j] for i in voters], list(range(len(voters))),
                            total - kappa / U16_MAX, 0.0, total) for j in rows]
    clipped = [[min(w[i][j], consensus[j]) for j in rows] for i in rows]
    vtrust = [sum(clipped[i]) for i in rows]
    ranks = [sum(clipped[i][j] * a[i] for i in rows) for j in rows]
    trust = [ranks[j] / preranks[j] if preranks[j] != 0 else 0.0 for j in rows]
    incentive = ref_normalize(ranks)

    def col_normalize(m):
        sums = [sum(m[i][j] for i in rows) for j in rows]
        return [[m[i][j] / sums[j] if sums[j] != 0 else m[i][j] for j in rows] for i in rows]

    p = penalty / U16_MAX
    last_tempo = max(block - tempo, 0)
    old = col_normalize([[0.0 if last_tempo <= registered[j] else float(B[i][j]) for j in rows]
                         for i in rows])
    delta = col_normalize([[(w[i][j] + p * (clipped[i][j] - w[i][j])) * a[i] for j in rows]
                           for i in rows])
    alpha = 1 - bma / 1_000_000
    ema = col_normalize([[alpha * delta[i][j] + (1 - alpha) * old[i][j] for j in rows]
                         for i in rows])
    dividends = ref_normalize([sum(ema[i][j] * incentive[j] for j in rows) for i in rows])
    colmax = [max([ema[i][j] for i in rows], default=0.0) for j in rows]
    bonds = [[ema[i][j] / colmax[j] if colmax[j] > 0 and new_permit[i] else 0.0 for j in rows]
             for i in rows]

    combined = [incentive[i] + dividends[i] for i in rows]
    esum = sum(combined)
    if esum != 0:
        server = [x / esum for x in incentive]
        validator = [x / esum for x in dividends]
        combined = [x / esum for x in combined]
    else:
        server = incentive
        validator = s if sum(a) == 0 else a
        combined = validator
    return dict(active=active, validator_permit=new_permit, stake_weight=s, active_stake=a,
                consensus=consensus, trust=trust, validator_trust=vtrust, rank=incentive,
                incentive=incentive, dividends=dividends, pruning_scores=combined,
                server_emission=[x * emission for x in server],
                validator_emission=[x * emission for x in validator],
                emission=[x * emission for x in combined], bonds=bonds)


def assert_matches(result, ref, atol=1e-9):
    for name, expected in ref.items():
        got = getattr(result, name)
        assert np.allclose(got, np.array(expected, dtype=float), atol=atol, rtol=0), name


def run_both(stake, W, B=None, permit=None, last_update=None, registered=None, block=1000,
             emission=1000.0, kappa=32767, bma=900_000, penalty=U16_MAX, tempo=360, owner=None):
    n = len(stake)
    B = np.zeros((n, n)) if B is None else np.asarray(B, float)
    permit = [True] * n if permit is None else permit
    last_update = [block - 1] * n if last_update is None else last_update
    registered = [0] * n if registered is None else registered
    params = YumaParams(kappa=kappa, bonds_moving_average=bma, bonds_penalty=penalty, tempo=tempo)
    result = epoch(stake, W, B, permit, last_update, registered, current_block=block,
                   emission=emission, params=params, owner_uid=owner)
    ref = ref_epoch(list(stake), np.asarray(W, float).tolist(), B.tolist(), list(permit),
                    list(last_update), list(registered), block, emission, kappa, bma, penalty,
                    tempo, owner=owner)
    return result, ref


# ------------------------------------------------------------------------------ worked example

# uids 0-2 are validators (stake 0.5, 0.3, 0.2), uids 3-6 miners. Validator 2 is an outlier.
EX_STAKE = [0.5, 0.3, 0.2, 0.0, 0.0, 0.0, 0.0]
EX_W = np.zeros((7, 7))
EX_W[0, 3:] = [0.4, 0.3, 0.2, 0.1]
EX_W[1, 3:] = [0.4, 0.3, 0.2, 0.1]
EX_W[2, 3:] = [0.1, 0.1, 0.1, 0.7]


def test_worked_example_by_hand_and_by_reference():
    result, ref = run_both(EX_STAKE, EX_W * U16_MAX, permit=[True] * 3 + [False] * 4)
    assert_matches(result, ref)
    # By hand: the kappa-median of each miner column is the honest validators' weight (0.8 of the
    # stake), so consensus = [.4, .3, .2, .1]; validator 2 keeps min(w, c) = .1 on each miner.
    assert np.allclose(result.consensus[3:], [0.4, 0.3, 0.2, 0.1])
    assert np.allclose(result.validator_trust[:3], [1.0, 1.0, 0.4])
    # preranks = [.34, .26, .18, .22], ranks = [.34, .26, .18, .10] (sum .88).
    assert np.allclose(result.trust[3:], [1, 1, 1, 0.10 / 0.22])
    assert np.allclose(result.incentive[3:], np.array([0.34, 0.26, 0.18, 0.10]) / 0.88)
    # With no previous bonds, bonds = dB and dividends_i = s_i * vtrust_i / .88, normalised.
    assert np.allclose(result.dividends[:3], np.array([0.5, 0.3, 0.08]) / 0.88)
    # Emission: half to miners by incentive, half to validators by dividends.
    assert np.allclose(result.server_emission, 500 * result.incentive)
    assert np.allclose(result.validator_emission, 500 * result.dividends)
    chain = result.to_chain()
    assert chain.validator_trust[:3].tolist() == [65535, 65535, int(0.4 * 65535)]
    assert np.all(np.abs(chain.incentive.astype(int) - proportion_to_u16(ref["incentive"])) <= 1)
    assert chain.emission.dtype == np.uint64 and chain.bonds.dtype == np.uint16


# ------------------------------------------------------------------------ kappa-median ties


def test_kappa_median_tie_goes_to_higher_value_at_exact_half():
    stake = np.array([0.5, 0.5])
    score = np.array([[0.2], [0.8]])
    assert weighted_median_col(stake, score, 0.5)[0] == 0.8  # minority 0.5 = C(<=0.2): next value
    assert weighted_median_col(stake, score, 32767 / U16_MAX)[0] == 0.8  # default kappa
    assert weighted_median_col(stake, score, 32768 / U16_MAX)[0] == 0.2  # just over half


def test_kappa_median_extremes_and_equal_scores():
    stake = np.array([0.25, 0.25, 0.5])
    score = np.array([[0.1], [0.9], [0.5]])
    assert weighted_median_col(stake, score, 1.0)[0] == 0.1  # minority <= 0: the minimum
    assert weighted_median_col(stake, score, 0.0)[0] == 0.9  # minority = all: the maximum
    assert weighted_median_col(stake, score, 0.5)[0] == 0.5
    assert weighted_median_col(stake, np.full((3, 1), 0.3), 0.5)[0] == 0.3
    # Zero-stake rows do not vote; no voters at all gives 0.
    assert weighted_median_col(np.array([0.0, 1.0]), np.array([[1.0], [0.2]]), 0.5)[0] == 0.2
    assert weighted_median_col(np.zeros(2), np.ones((2, 1)), 0.5)[0] == 0.0


@pytest.mark.parametrize("kappa", [0, 1, 21845, 32767, 32768, 43690, 65534, 65535])
def test_kappa_median_matches_pivot_search(kappa):
    rng = np.random.default_rng(kappa)
    stake = rng.integers(1, 5, size=6).astype(float)
    stake /= stake.sum()
    score = rng.integers(0, 4, size=(6, 5)) / 4.0  # many ties
    got = weighted_median_col(stake, score, kappa / U16_MAX)
    total = stake.sum()
    want = [ref_median(list(stake), list(score[:, j]), list(range(6)), total - kappa / U16_MAX,
                       0.0, total) for j in range(5)]
    assert got.tolist() == want


# -------------------------------------------------------------------- clipping and outliers


def test_outlier_validator_is_clipped():
    n_val, n_min = 5, 6
    n = n_val + n_min
    W = np.zeros((n, n))
    rng = np.random.default_rng(0)
    honest = np.array([5, 4, 3, 2, 1, 0], float)
    for i in range(4):
        W[i, n_val:] = honest + rng.uniform(0, 0.2, n_min)
    W[4, n_val:] = [0, 0, 0, 0, 0, 1]  # all weight on the miner nobody else likes
    result, ref = run_both([1.0] * n_val + [0.0] * n_min, W)
    assert_matches(result, ref)
    assert result.validator_trust[4] < 0.1
    assert np.all(result.validator_trust[:4] > 0.9)
    assert result.incentive[-1] < 0.01 and result.trust[-1] < 0.1
    assert result.dividends[4] < 0.05 < result.dividends[:4].min()


# ------------------------------------------------------------------------------------- bonds


def test_bonds_ema_direction_new_bonds_weigh_ten_percent():
    # uid 2 is the only miner. Old bonds on it belong to validator 0 only; this epoch only
    # validator 1 weights it. With bonds_moving_average 900000 the new bonds weigh 10%.
    W = np.zeros((3, 3))
    W[1, 2] = 1.0
    B = np.zeros((3, 3))
    B[0, 2] = U16_MAX
    result, ref = run_both([1.0, 1.0, 0.0], W, B=B, permit=[True, True, False])
    assert_matches(result, ref)
    # ema column = 0.9 * old + 0.1 * new = (0.9, 0.1); stored column max-upscaled.
    assert np.allclose(result.bonds[:2, 2], [1.0, 0.1 / 0.9])
    assert np.allclose(result.dividends[:2], [0.9, 0.1])
    fast, _ = run_both([1.0, 1.0, 0.0], W, B=B, permit=[True, True, False], bma=100_000)
    assert np.allclose(fast.dividends[:2], [0.1, 0.9])


def test_bonds_to_recently_registered_uid_are_dropped():
    W = np.zeros((3, 3))
    W[1, 2] = 1.0
    B = np.zeros((3, 3))
    B[0, 2] = U16_MAX
    # uid 2 registered at 900 >= last_tempo = 1000 - 360: the old bond refers to its predecessor.
    result, ref = run_both([1.0, 1.0, 0.0], W, B=B, registered=[0, 0, 900])
    assert_matches(result, ref)
    assert np.allclose(result.dividends[:2], [0.0, 1.0])


def test_bonds_cleared_for_uids_without_new_permit():
    W = np.zeros((4, 4))
    W[:3, 3] = 1.0
    result = epoch([3.0, 2.0, 1.0, 0.0], W, None, [True] * 4, [999] * 4, [0] * 4, 1000,
                   params=YumaParams(max_allowed_validators=2))
    assert result.validator_permit.tolist() == [True, True, False, False]
    assert np.all(result.bonds[2:] == 0) and result.bonds[0, 3] == 1.0


# -------------------------------------------------------------------------- weight masking


def test_self_weights_outdated_weights_and_owner():
    W = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    # uid 1 re-registered at block 950, after validator 0 last set weights (940): outdated.
    result, ref = run_both([1.0, 1.0, 0.0], W, last_update=[940, 960, 960],
                           registered=[0, 950, 0])
    assert_matches(result, ref)
    assert result.incentive.tolist() == [0.0, 0.0, 1.0]
    owner, ref_owner = run_both([1.0, 1.0, 0.0], W, owner=0, last_update=[940, 960, 960],
                                registered=[0, 950, 0])
    assert_matches(owner, ref_owner)
    assert owner.incentive[0] > 0  # the owner's self-weight is kept


# ----------------------------------------------------------------------------- degenerates


def check_clean(result, n):
    for name in ("stake_weight", "rank", "trust", "consensus", "incentive", "dividends",
                 "validator_trust", "pruning_scores", "emission", "bonds"):
        value = getattr(result, name)
        assert np.all(np.isfinite(value)), name
        assert value.shape[0] == n, name
    result.to_chain()


def test_empty_network():
    result = epoch([], np.zeros((0, 0)), None, [], [], [], current_block=10, emission=5.0)
    check_clean(result, 0)


def test_single_uid_gets_everything_by_stake():
    result, ref = run_both([2.0], [[1.0]], emission=10.0)
    assert_matches(result, ref)
    check_clean(result, 1)
    assert result.incentive[0] == 0 and result.emission[0] == 10.0


@pytest.mark.parametrize("case", ["no_validators", "zero_stake", "zero_weights", "inactive"])
def test_degenerate_inputs(case):
    n = 5
    stake, W = [3.0, 1.0, 0.0, 0.0, 0.0], np.ones((n, n))
    permit, last_update = [True, True, False, False, False], [999] * n
    if case == "no_validators":
        permit = [False] * n
    elif case == "zero_stake":
        stake = [0.0] * n
    elif case == "zero_weights":
        W = np.zeros((n, n))
    elif case == "inactive":
        last_update = [0] * n  # 0 + 5000 < 10000
    block = 10_000 if case == "inactive" else 1000
    result, ref = run_both(stake, W, permit=permit, last_update=last_update, block=block)
    assert_matches(result, ref)
    check_clean(result, n)
    # No incentive: emission falls back to (active) stake; with no stake at all nothing is paid.
    assert np.isclose(result.emission.sum(), 0.0 if case == "zero_stake" else 1000.0)


# ------------------------------------------------------------------------- sums and units


def test_outputs_sum_to_one_and_emission_splits_half_half():
    rng = np.random.default_rng(1)
    n = 20
    stake = np.r_[rng.uniform(1, 10, 6), np.zeros(14)]
    W = rng.integers(0, U16_MAX, size=(n, n)).astype(float)
    result = epoch(stake, W, None, stake > 0, [999] * n, [0] * n, 1000, emission=1e9)
    for name in ("incentive", "dividends", "pruning_scores", "stake_weight", "active_stake"):
        assert np.isclose(getattr(result, name).sum(), 1.0), name
    assert np.isclose(result.server_emission.sum(), 5e8)
    assert np.isclose(result.validator_emission.sum(), 5e8)
    assert np.allclose(result.emission, result.server_emission + result.validator_emission)
    chain = result.to_chain()
    assert chain.pruning_scores.max() == U16_MAX
    assert np.all(chain.bonds.max(axis=0)[n - 14:][chain.bonds.max(axis=0)[n - 14:] > 0] == U16_MAX)


def test_u16_helpers():
    assert proportion_to_u16(np.array([0.0, 0.5, 1.0, 1.5])).tolist() == [0, 32767, 65535, 65535]
    assert max_upscale_to_u16(np.array([0.0, 0.25, 0.5])).tolist() == [0, 32768, 65535]
    assert max_upscale_to_u16(np.zeros(3)).tolist() == [0, 0, 0]
    assert is_topk_nonzero(np.array([0.3, 0.0, 0.3, 0.4]), 2).tolist() == [False, False, True, True]
    assert is_topk_nonzero(np.array([0.0, 0.5]), 5).tolist() == [False, True]


# ------------------------------------------------------------------------- property test


@st.composite
def networks(draw):
    n = draw(st.integers(1, 7))
    stake = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.01, 100.0)), min_size=n, max_size=n))
    u16 = st.one_of(st.just(0), st.integers(0, U16_MAX))
    W = draw(st.lists(st.lists(u16, min_size=n, max_size=n), min_size=n, max_size=n))
    B = draw(st.lists(st.lists(u16, min_size=n, max_size=n), min_size=n, max_size=n))
    permit = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    last_update = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
    registered = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
    block = draw(st.integers(900, 7000))
    kappa = draw(st.integers(0, U16_MAX))
    bma = draw(st.integers(0, 1_000_000))
    penalty = draw(st.sampled_from([0, U16_MAX, 32767]))
    tempo = draw(st.integers(1, 500))
    owner = draw(st.one_of(st.none(), st.integers(0, n - 1)))
    return stake, W, B, permit, last_update, registered, block, kappa, bma, penalty, tempo, owner


def off_boundary(stake, permit, last_update, block, kappa):
    """True unless the kappa minority lands (to float rounding) on a partial stake sum."""
    s = np.array(stake) / sum(stake) if sum(stake) else np.array(stake)
    a = np.array([s[i] if permit[i] and last_update[i] + 5000 >= block else 0.0
                  for i in range(len(s))])
    a = a[a > 0] / a.sum() if a.sum() else a[a > 0]
    minority = a.sum() - kappa / U16_MAX
    for r in range(1, len(a)):
        for subset in itertools.combinations(a, r):
            if abs(sum(subset) - minority) < 1e-9:
                return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_vectorised_matches_loop_reference(net):
    stake, W, B, permit, last_update, registered, block, kappa, bma, penalty, tempo, owner = net
    assume(off_boundary(stake, permit, last_update, block, kappa))
    result, ref = run_both(stake, W, B=B, permit=permit, last_update=last_update,
                           registered=registered, block=block, emission=1e9, kappa=kappa,
                           bma=bma, penalty=penalty, tempo=tempo, owner=owner)
    assert_matches(result, ref, atol=1e-6)  # emission is in rao (1e9): relative 1e-15
    check_clean(result, len(stake))
    for name in ("incentive", "dividends", "pruning_scores"):
        total = getattr(result, name).sum()
        assert np.isclose(total, 1.0) or total == 0.0, name
