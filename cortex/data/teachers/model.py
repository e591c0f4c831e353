"""The analyst's small models: an L2-regularised logistic regression (IRLS) for the direction
and a ridge regression for the volatility-scaled return. numpy only, deterministic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Model inputs, in the order of the coefficient vector (after the intercept).
INPUTS: tuple[str, ...] = (
    "ret_1d", "ret_3d", "ret_7d", "ret_14d", "ret_30d", "vol_ratio", "volume_chg",
    "taker_ratio", "dd_30d", "dd_90d", "rel_btc_7d", "rel_btc_30d",
)
NAMES = {
    "ret_1d": "the 1-day return", "ret_3d": "the 3-day return", "ret_7d": "the 7-day return",
    "ret_14d": "the 14-day return", "ret_30d": "the 30-day return",
    "vol_ratio": "short- against long-run volatility", "volume_chg": "the volume trend",
    "taker_ratio": "the taker-buy ratio", "dd_30d": "the distance from the 30-day high",
    "dd_90d": "the distance from the 90-day high", "rel_btc_7d": "weekly strength against BTC",
    "rel_btc_30d": "monthly strength against BTC",
}


def inputs(f: dict) -> np.ndarray:
    """The raw input vector of a feature dict (missing values as 0: neutral)."""
    def get(key: str) -> float:
        value = f.get(key)
        return 0.0 if value is None else float(value)

    vol_ratio = get("vol_7d") / get("vol_30d") - 1.0 if get("vol_30d") > 0 else 0.0
    values = {k: get(k) for k in INPUTS}
    values["vol_ratio"] = vol_ratio
    values["taker_ratio"] = (get("taker_ratio") - 0.5) * 100.0 if f.get("taker_ratio") is not None else 0.0
    return np.array([values[k] for k in INPUTS], dtype=float)


@dataclass
class Standardiser:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardiser":
        scale = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(scale > 1e-12, scale, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = np.clip((x - self.mean) / self.scale, -5.0, 5.0)
        return np.column_stack([np.ones(len(z)), z])


def _penalty(k: int, l2: float) -> np.ndarray:
    pen = np.full(k, float(l2))
    pen[0] = 0.0  # never shrink the intercept
    return np.diag(pen)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 10.0, iters: int = 50) -> np.ndarray:
    """Newton/IRLS for an L2-penalised logistic regression; ``x`` includes the intercept column."""
    w = np.zeros(x.shape[1])
    pen = _penalty(x.shape[1], l2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (y - p) - pen @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + pen + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w = w + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return w


def fit_ridge(x: np.ndarray, y: np.ndarray, l2: float = 10.0) -> np.ndarray:
    return np.linalg.solve(x.T @ x + _penalty(x.shape[1], l2) + 1e-9 * np.eye(x.shape[1]), x.T @ y)


def sigmoid(v: np.ndarray | float):
    return 1.0 / (1.0 + np.exp(-np.clip(v, -30, 30)))
