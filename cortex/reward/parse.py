"""Strict parsing of ``<think>…</think><answer>{json}</answer>`` (DESIGN.md §7).

Strict on purpose: whatever the parser tolerates, GRPO will find and exploit. The rules:

- The completion is at most ``max_completion_chars`` long; longer is unparseable, so that nothing
  after this check ever sees megabytes of text.
- Tags are exactly ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` (ASCII, lowercase, no
  spaces); any other spelling of these four in any case is a malformed tag. Look-alikes
  (``＜answer＞``) are not tags at all, just text.
- The tag sequence is ``<think> </think> <answer> </answer>``, or ``</think> <answer> </answer>``
  when the chat template already opened the thinking block in the prompt (DeepSeek-R1 and Qwen3
  templates do). Only whitespace may stand before ``<think>``, between ``</think>`` and
  ``<answer>``, and after ``</answer>``. So a second answer, an answer inside the reasoning, or
  trailing text is a parse error.
- The answer body is ASCII JSON (at most ``max_answer_chars``): one object with exactly the keys
  asset, horizon_days, direction, p_up, return_pct, no duplicate keys, no NaN/Infinity.
- ``direction`` is "up" or "down"; ``p_up`` a finite number in [0, 1] (outside is an error, not
  clipped: clipping would reward a model for not knowing what a probability is);
  ``return_pct`` a finite number with ``|x| <= max_abs_return_pct``; ``horizon_days`` an integer
  equal to the sample's; ``asset`` equal to the sample's (case-insensitive). Booleans are not
  numbers, numeric strings are not numbers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from cortex.reward.config import RewardConfig

KEYS = ("asset", "horizon_days", "direction", "p_up", "return_pct")
_TAG = re.compile(r"<(/?)(think|answer)>", re.IGNORECASE)


class _Reject(ValueError):
    """A JSON value the answer format forbids (raised from inside the decoder's hooks)."""


@dataclass(frozen=True)
class Parsed:
    """A parsed completion: the reasoning text and the answer, or the reason it failed."""

    reasoning: str = ""
    answer: dict[str, Any] | None = None
    error: str | None = None


def _fail(reason: str) -> Parsed:
    return Parsed(error=reason)


def parse_completion(text: object, asset: str, horizon_days: int, config: RewardConfig) -> Parsed:
    """Split a completion into reasoning and a validated answer; never raises."""
    if not isinstance(text, str):
        return _fail(f"completion is not a string ({type(text).__name__})")
    if len(text) > config.max_completion_chars:
        return _fail(f"completion longer than {config.max_completion_chars} characters")
    tags = list(_TAG.finditer(text))
    for tag in tags:
        if tag.group(0) != tag.group(0).lower():
            return _fail(f"malformed tag {tag.group(0)!r} (tags are lowercase)")
    names = [tag.group(0).lower() for tag in tags]
    opens = names.count("<answer>")
    if opens == 0:
        return _fail("no <answer> block")
    if opens > 1:
        return _fail(f"{opens} <answer> blocks (exactly one is allowed)")
    if names not in (["<think>", "</think>", "<answer>", "</answer>"],
                     ["</think>", "<answer>", "</answer>"]):
        return _fail("tags out of order: expected [<think>] </think> <answer> </answer>, got "
                     + " ".join(names[:8]) + (" …" if len(names) > 8 else ""))
    if names[0] == "<think>":
        think_open, rest = tags[0], tags[1:]
        if text[: think_open.start()].strip():
            return _fail("text before <think>")
        reasoning_start = think_open.end()
    else:
        rest, reasoning_start = tags, 0
    think_close, answer_open, answer_close = rest
    if text[think_close.end() : answer_open.start()].strip():
        return _fail("text between </think> and <answer>")
    if text[answer_close.end() :].strip():
        return _fail("text after </answer>")
    reasoning = text[reasoning_start : think_close.start()]
    body = text[answer_open.end() : answer_close.start()].strip()
    answer, error = parse_answer_json(body, asset, horizon_days, config)
    if error is not None:
        return _fail(error)
    return Parsed(reasoning=reasoning, answer=answer)


def parse_answer_json(
    body: str, asset: str, horizon_days: int, config: RewardConfig
) -> tuple[dict[str, Any] | None, str | None]:
    """Decode and validate the JSON inside ``<answer>``: (answer, None) or (None, reason)."""
    if len(body) > config.max_answer_chars:
        return None, f"answer longer than {config.max_answer_chars} characters"
    if not body.isascii():
        return None, "non-ASCII characters in the answer"
    try:
        obj = json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except _Reject as exc:
        return None, str(exc)
    except (ValueError, RecursionError):
        return None, "answer is not valid JSON"
    if not isinstance(obj, dict):
        return None, "answer is not a JSON object"
    missing = [k for k in KEYS if k not in obj]
    if missing:
        return None, "answer lacks " + ", ".join(missing)
    extra = sorted(k for k in obj if k not in KEYS)
    if extra:
        return None, "answer has unknown keys " + ", ".join(extra[:5])
    if not isinstance(obj["asset"], str) or obj["asset"].strip().upper() != asset.upper():
        return None, f"answer asset {str(obj['asset'])[:20]!r} is not the sample's {asset!r}"
    horizon = obj["horizon_days"]
    if type(horizon) is not int or horizon != horizon_days:
        return None, f"answer horizon_days {str(horizon)[:20]!r} is not the sample's {horizon_days}"
    direction = obj["direction"]
    if direction not in ("up", "down"):
        return None, f"direction {str(direction)[:20]!r} is not 'up' or 'down'"
    p_up = _finite(obj["p_up"])
    if p_up is None:
        return None, "p_up is not a finite number"
    if not 0.0 <= p_up <= 1.0:
        return None, f"p_up {p_up:.6g} is outside [0, 1]"
    return_pct = _finite(obj["return_pct"])
    if return_pct is None:
        return None, "return_pct is not a finite number"
    if abs(return_pct) > config.max_abs_return_pct:
        return None, f"|return_pct| {abs(return_pct):.6g} exceeds {config.max_abs_return_pct:g}"
    answer = {"asset": asset, "horizon_days": horizon_days, "direction": direction,
              "p_up": p_up, "return_pct": return_pct}
    return answer, None


def _finite(value: object) -> float | None:
    """A JSON number as a finite float, or None (bools, strings, overflow and NaN are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Reject("answer repeats a key")
    return dict(pairs)


def _no_constants(name: str) -> float:
    raise _Reject(f"{name} is not allowed in the answer")
