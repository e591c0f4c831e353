"""``synthetic``: a seeded multi-asset market with the stylised facts of crypto returns.

Daily log return of asset i on day t::

    r[i,t] = beta_i * (mu[s_t] + m_t + k_t) + e[i,t],   k_t = K * mean(m[t-L .. t-1])

- ``s_t`` is a Markov regime (bull, bear, chop) with its own drift ``mu`` and volatility multiplier;
- ``m_t`` is a common market factor: GARCH(1,1) volatility times standardised Student-t
  innovations (fat tails, volatility clustering), scaled by the regime's multiplier;
- ``k_t`` is the market's **underreaction**, the one learnable signal: a further ``K`` times each
  market shock arrives evenly over the ``L`` days after it (news is absorbed slowly). It is a function
  of past prices only, so the prompt's trailing returns show it (the 14- and 30-day returns, and BTC's
  through the strength against BTC); its strength is ``K`` (``momentum``, 4.0) over ``L``
  (``momentum_days``, 20). ``momentum=0`` gives the older market, with nothing to forecast.
  :meth:`SyntheticSource.oracle_p_up` is the forecast of someone who knows this structure;
- ``e[i,t]`` is the asset's own GARCH(1,1)/Student-t noise, and ``beta_i`` its exposure to the
  market, so assets are positively correlated through the shared factor.

Volume follows the size of the day's move (``|z|``) plus a persistent AR(1) component; the
taker-buy share leans with the sign of the move. The path is generated from a fixed epoch, so
every window of days (and every subset of assets) is a slice of the same market: the factor and
regimes depend on the seed only, each asset's own noise on the seed and its name.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from cortex.data.frame import MARKET_COLUMNS, DataError, to_day
from cortex.data.sources.base import finish

DEFAULT_START, DEFAULT_END = "2020-01-01", "2024-12-31"
TYPICAL = {"BTC": (9_000.0, 1.0, 2e9), "ETH": (700.0, 1.2, 1e9), "SOL": (2.0, 1.5, 2e8),
           "NEAR": (1.5, 1.4, 5e7), "BNB": (15.0, 1.1, 1.5e8), "XRP": (0.3, 1.2, 2e8)}


@dataclass(frozen=True)
class SyntheticParams:
    """Every number that shapes the synthetic market (daily units; returns are log returns)."""

    seed: int = 0
    epoch: str = "2017-01-01"  # first day of the path; any window is a slice of it
    df: float = 4.0  # Student-t degrees of freedom (lower: fatter tails)
    market_vol: float = 0.028  # unconditional daily vol of the market factor
    market_garch: tuple[float, float] = (0.10, 0.86)  # (alpha, beta); persistence 0.96
    idio_vol: float = 0.022  # unconditional daily vol of an asset's own noise
    idio_garch: tuple[float, float] = (0.06, 0.90)
    regimes: tuple[str, ...] = ("bull", "bear", "chop")
    regime_drift: tuple[float, ...] = (0.0040, -0.0030, 0.0008)  # mu per regime
    regime_vol: tuple[float, ...] = (0.9, 1.35, 0.75)  # multiplier on the factor's vol
    regime_stay: float = 0.985  # daily probability of staying in a regime (mean spell ~67 days)
    momentum: float = 4.0  # K: the further share of each market shock that arrives over the next L days
    momentum_days: int = 20  # L: the days over which it arrives
    volume_elasticity: float = 0.35  # log-volume response to |standardised move|
    volume_ar: float = 0.93  # persistence of the volume level
    volume_noise: float = 0.12
    taker_tilt: float = 0.04  # taker-buy share = 0.5 + tilt * tanh(z) + noise
    trade_size_usd: float = 1_500.0  # quote volume per trade
    overrides: dict = field(default_factory=dict)  # asset -> (start price, beta, mean quote volume)


def _std_t(rng: np.random.Generator, df: float, n: int) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(df, size=n) * np.sqrt((df - 2.0) / df)


def _garch(z: np.ndarray, vol: float, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns (eps, sigma) of a GARCH(1,1) with unconditional vol ``vol`` driven by unit shocks ``z``."""
    omega = vol**2 * (1.0 - alpha - beta)
    sigma = np.empty_like(z)
    eps = np.empty_like(z)
    var = vol**2
    for t in range(len(z)):
        sigma[t] = np.sqrt(var)
        eps[t] = sigma[t] * z[t]
        var = omega + alpha * eps[t] ** 2 + beta * var
    return eps, sigma


class SyntheticSource:
    """The offline default source. Every frame it returns is synthetic and says so."""

    is_synthetic = True

    def __init__(self, seed: int = 0, params: SyntheticParams | None = None):
        self.params = params or SyntheticParams(seed=seed)
        self.name = f"synthetic(seed={self.params.seed})"
        self._market: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _rng(self, stream: int, part: int) -> np.random.Generator:
        """One generator per (stream, part), drawn element by element: a longer path has the same
        prefix (stream 0 is the market; an asset's stream is the CRC32 of its name)."""
        return np.random.default_rng([self.params.seed, stream, part])

    def market(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(regime index, factor return with its underreaction, factor sigma) for the first ``n`` days;
        seed only."""
        states, shock, sigma = self._factor(n)
        return states, shock + self._underreaction(shock), sigma

    def _factor(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(regime index, factor shock ``m``, factor sigma) for the first ``n`` days."""
        if n not in self._market:
            p = self.params
            k = len(p.regimes)
            states = np.empty(n, dtype=int)
            u = self._rng(0, 0).random(n)
            jump = self._rng(0, 1).integers(1, k, size=n)
            state = 2 % k
            for t in range(n):
                if u[t] > p.regime_stay:
                    state = (state + jump[t]) % k
                states[t] = state
            eps, sigma = _garch(_std_t(self._rng(0, 2), p.df, n), p.market_vol, *p.market_garch)
            mult = np.asarray(p.regime_vol)[states]
            self._market[n] = (states, eps * mult, sigma * mult)
        return self._market[n]

    def _underreaction(self, shock: np.ndarray) -> np.ndarray:
        """``k_t = K * mean(shock[t-L .. t-1])`` (the first days average what there is)."""
        p = self.params
        csum = np.concatenate([[0.0], np.cumsum(shock)])
        t = np.arange(len(shock))
        lo = np.maximum(0, t - p.momentum_days)
        return p.momentum * (csum[t] - csum[lo]) / p.momentum_days

    def _own(self, asset: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(own noise ``e``, its sigma) of an asset for the first ``n`` days; seed and name only."""
        p = self.params
        return _garch(_std_t(self._rng(zlib.crc32(asset.encode()), 0), p.df, n), p.idio_vol, *p.idio_garch)

    def oracle_p_up(self, asset: str, cutoff, horizon: int) -> float:
        """P(close[t+h] > close[t]) for someone who knows the generator, today's regime and every
        market shock up to ``cutoff`` (none after it): the regime's drift (as if the regime stays), the
        underreaction still to come from the shocks already seen, and the GARCH variances of the next
        days, as a normal approximation, within [0.01, 0.99]. More than any prompt shows (the regime, the exact shocks): the
        ceiling of a forecaster's skill on this market."""
        from statistics import NormalDist

        p = self.params
        t = (to_day(cutoff) - to_day(p.epoch)).days
        n = t + horizon + 1
        longest = max((k for k in self._market if k >= n), default=n)  # a longer path has the same prefix
        states, shock, m_sigma = self._factor(longest)
        beta = self.typical(asset)[1]
        drift = horizon * p.regime_drift[states[t]]
        for j in range(1, horizon + 1):  # day t + j: the part of its k from shocks of days <= t
            lo = max(0, t + j - p.momentum_days)
            if lo <= t:
                drift += p.momentum * float(shock[lo : t + 1].sum()) / p.momentum_days
        e_sigma = self._own(asset, longest)[1]
        spread = float(np.sqrt(np.sum((beta * m_sigma[t + 1 : n]) ** 2 + e_sigma[t + 1 : n] ** 2)))
        q = NormalDist().cdf(beta * drift / spread) if spread > 0 else 0.5
        return min(max(q, 0.01), 0.99)  # as an answer states it (two decimals): never certain

    def typical(self, asset: str) -> tuple[float, float, float]:
        """(start price, market beta, mean daily quote volume) for an asset."""
        if asset in self.params.overrides:
            return tuple(self.params.overrides[asset])
        if asset in TYPICAL:
            return TYPICAL[asset]
        h = zlib.crc32(asset.encode())
        return (10 ** ((h % 400) / 100 - 1), 1.1 + (h >> 9) % 40 / 100, 10 ** (7 + (h >> 17) % 200 / 100))

    def asset_frame(self, asset: str, n: int) -> pd.DataFrame:
        p = self.params
        states, m, m_sigma = self.market(n)
        price0, beta, qvol = self.typical(asset)
        tag = zlib.crc32(asset.encode())
        e, e_sigma = self._own(asset, n)
        r = beta * (np.asarray(p.regime_drift)[states] + m) + e
        sigma = np.sqrt((beta * m_sigma) ** 2 + e_sigma**2)
        z = r / sigma
        close = price0 * np.exp(np.cumsum(r))
        open_ = np.concatenate([[price0], close[:-1]])
        wick = sigma * 0.45
        high = np.maximum(open_, close) * np.exp(np.abs(self._rng(tag, 1).normal(0, 1, n)) * wick)
        low = np.minimum(open_, close) * np.exp(-np.abs(self._rng(tag, 2).normal(0, 1, n)) * wick)
        level = np.empty(n)
        shocks = self._rng(tag, 3).normal(0, p.volume_noise, n)
        acc = 0.0
        for t in range(n):
            acc = p.volume_ar * acc + shocks[t]
            level[t] = acc
        log_q = np.log(qvol) + p.volume_elasticity * (np.abs(z) - 0.8) + level
        quote_volume = np.exp(log_q)
        vwap = (open_ + high + low + close) / 4.0
        volume = quote_volume / vwap
        share = np.clip(0.5 + p.taker_tilt * np.tanh(z) + self._rng(tag, 4).normal(0, 0.012, n), 0.3, 0.7)
        trades = np.maximum(1.0, np.round(quote_volume / p.trade_size_usd))
        index = pd.date_range(p.epoch, periods=n, freq="D", name="day")
        columns = [open_, high, low, close, volume, quote_volume, trades, volume * share, quote_volume * share]
        return pd.DataFrame(dict(zip(MARKET_COLUMNS, columns)), index=index)

    def regimes(self, start, end) -> pd.Series:
        """The regime name of each day in [start, end] (for documentation and checks)."""
        n = (to_day(end) - to_day(self.params.epoch)).days + 1
        states = self.market(n)[0]
        index = pd.date_range(self.params.epoch, periods=n, freq="D", name="day")
        names = pd.Series(np.asarray(self.params.regimes)[states], index=index)
        return names.loc[to_day(start) :]

    def load(self, assets: Sequence[str], start=None, end=None) -> dict[str, pd.DataFrame]:
        start = max(to_day(start or DEFAULT_START), to_day(self.params.epoch))  # nothing before the epoch
        end = to_day(end or DEFAULT_END)
        if end < start:
            raise DataError(f"synthetic: empty range {start.date()}..{end.date()} "
                            f"(the path starts {self.params.epoch})")
        n = (end - to_day(self.params.epoch)).days + 1
        return {a: finish(self.asset_frame(a, n), a, start, end) for a in assets}
