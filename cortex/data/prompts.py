"""The chat prompt of a sample and the fixed answer format (DESIGN.md §7).

``system`` states the task and the exact answer format; ``user`` holds only data up to the
cutoff: a table of the last days and the features of :mod:`cortex.data.features`, formatted
with few digits so the prompt stays short for a small base model.
"""

from __future__ import annotations

import json
import math
import re

from cortex.data import features as F
from cortex.data.frame import iso

ANSWER_FORMAT = ('<think>…</think><answer>{"asset": "BTC", "horizon_days": 7, '
                 '"direction": "up"|"down", "p_up": 0..1, "return_pct": <percent>}</answer>')

SYSTEM_PROMPT = (
    "You are Cortex, a crypto market analyst. Read the daily data up to the cutoff, reason step "
    "by step in <think></think> using only its numbers, then answer exactly as:\n"
    f"{ANSWER_FORMAT}\n"
    "p_up: probability the close ends higher; return_pct: expected return in %."
)

ONCHAIN_NAMES = {"tx_count_chg": "tx count", "active_addresses_chg": "active addresses",
                 "dex_volume_chg": "DEX volume", "fees_chg": "fees"}


def feature_lines(f: dict) -> list[str]:
    """The feature block, one fact per line, numbers as :mod:`features` formats them."""
    rets = ", ".join(f"{k}d {F.pct(f[f'ret_{k}d'])}" for k in F.RETURN_WINDOWS)
    lines = [
        f"- returns: {rets}",
        f"- realised vol a day: 7d {F.pct(f['vol_7d']).lstrip('+')}, 30d {F.pct(f['vol_30d']).lstrip('+')}",
        f"- volume 7d vs prior 30d: {F.pct(f['volume_chg'], 0)}",
        f"- taker-buy ratio 7d: {F.num(f['taker_ratio'], 2, sign=False)}",
        f"- from high: 30d {F.pct(f['dd_30d'])}, 90d {F.pct(f['dd_90d'])}",
    ]
    if f.get("rel_btc_7d") is not None:
        lines.append(f"- vs BTC (pts): 7d {F.num(f['rel_btc_7d'])}, 30d {F.num(f['rel_btc_30d'])}")
    onchain = [f"{name} {F.pct(f[key], 0)}" for key, name in ONCHAIN_NAMES.items() if f.get(key) is not None]
    if onchain:
        lines.append(f"- on-chain 7d vs prior 30d: {', '.join(onchain)}")
    return lines


def user_prompt(asset: str, cutoff, horizon: int, f: dict, rows: list[tuple]) -> str:
    """The user message: header, recent-days table, features, the question."""
    out = [f"{asset} daily data up to {iso(cutoff)} (UTC).", "day close ret% vol%"]
    for day, close, ret, vchg in rows:
        vol = "n/a" if not math.isfinite(vchg) else f"{vchg:+.0f}"
        out.append(f"{day} {F.price(close)} {ret:+.1f} {vol}")
    out.append("Features:")
    out.extend(feature_lines(f))
    out.append(f"Forecast the close {horizon} day{'s' if horizon != 1 else ''} after the cutoff "
               f"(asset {asset}, horizon_days {horizon}).")
    return "\n".join(out)


def messages(asset: str, cutoff, horizon: int, f: dict, rows: list[tuple]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(asset, cutoff, horizon, f, rows)},
    ]


def format_answer(asset: str, horizon: int, p_up: float, return_pct: float) -> str:
    """``<answer>{…}</answer>`` with direction agreeing with ``p_up`` (0.5 counts as up)."""
    p_up, return_pct = round(float(p_up), 2), round(float(return_pct), 2)
    direction = "up" if p_up >= 0.5 else "down"
    body = {"asset": asset, "horizon_days": int(horizon), "direction": direction,
            "p_up": p_up, "return_pct": return_pct}
    return f"<answer>{json.dumps(body)}</answer>"


def completion(reasoning: str, answer: str) -> str:
    """The assistant message: ``<think>reasoning</think><answer>…</answer>``."""
    return f"<think>{reasoning.strip()}</think>{answer}"


_TOKEN = re.compile(r"\d{1,3}|[A-Za-z]+|[^\sA-Za-z\d]")


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate of BPE tokens (words, 3-digit groups, punctuation)."""
    return len(_TOKEN.findall(text))
