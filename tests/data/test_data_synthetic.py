"""The synthetic market: deterministic, labelled, and with crypto's stylised facts."""

import numpy as np
import pytest
import pandas as pd

from cortex.data.frame import MARKET_COLUMNS, check_frame
from cortex.data.sources import SyntheticParams, SyntheticSource, get_source


def test_deterministic_for_a_seed_and_differs_across_seeds():
    a = SyntheticSource(seed=7).load(["BTC", "ETH"], "2022-01-01", "2022-06-30")
    b = SyntheticSource(seed=7).load(["BTC", "ETH"], "2022-01-01", "2022-06-30")
    c = SyntheticSource(seed=8).load(["BTC", "ETH"], "2022-01-01", "2022-06-30")
    pd.testing.assert_frame_equal(a["ETH"], b["ETH"])
    assert not np.allclose(a["BTC"].close, c["BTC"].close)


def test_windows_and_asset_subsets_are_slices_of_one_market():
    src = SyntheticSource(seed=1)
    wide = src.load(["BTC", "ETH", "SOL"], "2021-01-01", "2022-12-31")
    narrow = SyntheticSource(seed=1).load(["ETH"], "2022-03-01", "2022-04-30")
    pd.testing.assert_frame_equal(narrow["ETH"], wide["ETH"].loc["2022-03-01":"2022-04-30"])


def test_shape_is_the_one_table_and_labelled_synthetic():
    src = get_source("synthetic:5")
    assert src.is_synthetic and "synthetic" in src.name and src.params.seed == 5
    frame = src.load(["NEWCOIN"], "2024-01-01", "2024-02-29")["NEWCOIN"]
    assert tuple(frame.columns) == MARKET_COLUMNS
    assert check_frame(frame).ok and len(frame) == 60
    ratio = frame.taker_buy_quote / frame.quote_volume
    assert ratio.between(0.3, 0.7).all() and (frame.trades >= 1).all()


def test_stylised_facts():
    frames = SyntheticSource(seed=0).load(["BTC", "ETH", "SOL", "NEAR"], "2018-01-01", "2024-12-31")
    rets = pd.DataFrame({a: np.log(f.close).diff() for a, f in frames.items()}).dropna()
    for asset, r in rets.items():
        assert r.kurt() > 1.0, f"{asset}: no fat tails"  # excess kurtosis of daily log returns
        a = r.abs()
        acf = [a.autocorr(lag) for lag in (1, 2, 5, 10)]
        assert min(acf) > 0.02, f"{asset}: no volatility clustering {acf}"
        # predictable through the stated underreaction only: K = 4 over 20 days gives 0.2-0.45 at lag 1 (a demo
        # market with skill to learn, docs/data.md), a coin's path near 0 (below)
        assert 0.0 < r.autocorr(1) < 0.5
    flat = SyntheticSource(params=SyntheticParams(seed=0, momentum=0.0)).load(["BTC", "ETH"], "2018-01-01", "2024-12-31")
    for asset, frame in flat.items():
        assert abs(np.log(frame.close).diff().dropna().autocorr(1)) < 0.1  # without it, close to unpredictable
    corr = rets.corr().to_numpy()
    assert corr[np.triu_indices(4, 1)].min() > 0.2  # the common market factor


def test_regimes_switch_and_are_documented():
    src = SyntheticSource(seed=2)
    regimes = src.regimes("2019-01-01", "2024-12-31")
    assert set(regimes.unique()) == set(SyntheticParams().regimes)
    switches = int((regimes != regimes.shift()).sum()) - 1
    assert 5 < switches < 200


def test_the_underreaction_is_the_stated_signal_and_the_oracle_reads_it():
    """k_t = K * mean of the last L market shocks: zero with K = 0, and the oracle's forecasts beat a coin."""
    on, off = SyntheticSource(seed=3), SyntheticSource(params=SyntheticParams(seed=3, momentum=0.0))
    n = 400
    states, shock, _ = on._factor(n)
    total = on.market(n)[1]
    p = on.params
    assert p.momentum == 4.0 and p.momentum_days == 20
    t = 200
    assert total[t] - shock[t] == pytest.approx(p.momentum * shock[t - p.momentum_days : t].mean())
    np.testing.assert_allclose(off.market(n)[1], off._factor(n)[1])  # K = 0: the shocks alone
    frames = on.load(["BTC", "SOL"], "2021-01-01", "2022-12-31")
    days = pd.date_range("2021-02-01", "2022-12-01", freq="5D")
    for asset in ("BTC", "SOL"):
        close = frames[asset].close
        for h in (1, 7):
            q = np.array([on.oracle_p_up(asset, d, h) for d in days])
            up = np.array([close[d + pd.Timedelta(days=h)] > close[d] for d in days], dtype=float)
            assert ((q > 0) & (q < 1)).all()
            skill = 1 - np.mean((q - up) ** 2) / 0.25
            assert skill > (0.1 if h == 7 else 0.0), (asset, h, skill)
    # the oracle knows nothing after the cutoff: the path up to it decides its forecast
    assert on.oracle_p_up("ETH", "2022-03-01", 7) == SyntheticSource(seed=3).oracle_p_up("ETH", "2022-03-01", 7)
