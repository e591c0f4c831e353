"""Text helpers for the reward: normalisation, word tokens and numbers.

Everything here is linear in the input: no regular expression has nested or adjacent
overlapping quantifiers, so a hostile completion cannot make it backtrack catastrophically. The
caller caps the length before anything gets here.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from dataclasses import dataclass

_WORD = re.compile(r"\w+")
# A number: digits with optional thousands commas, an optional decimal part. "[\d,]*" then
# "\.\d+" cannot overlap (a dot is not in the first class), so matching is linear.
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "bn": 1e9}


@functools.cache
def _format_chars() -> dict[int, None]:
    """Format characters (zero-width spaces and joiners, bidi marks and overrides, soft hyphens,
    tag characters): invisible, and the cheapest way to make repeated text look distinct.
    Built on first use (a scan of every code point, about 0.2 s)."""
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf"}


def normalise(text: str) -> str:
    """Fold text for analysis: drop format characters, NFKC, casefold.

    NFKC turns full-width digits and letters into ASCII (``６４２１０`` → ``64210``), so a number
    cannot hide from the checks by changing its script; casefolding makes "Bullish" = "bullish".
    """
    return unicodedata.normalize("NFKC", text.translate(_format_chars())).casefold()


def words(text: str, limit: int | None = None) -> list[str]:
    """Word tokens (runs of letters/digits): the tokenizer-free token count of the reward."""
    if limit is None:
        return _WORD.findall(text)
    out: list[str] = []
    for match in _WORD.finditer(text):
        out.append(match.group(0))
        if len(out) >= limit:
            break
    return out


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """The n-grams starting at every token (shorter at the end, so every token has one)."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens))]


@dataclass(frozen=True)
class Number:
    """A number as written: its value and the half-width of the interval it stands for.

    "3.1" stands for [3.05, 3.15]; "64.2k" for [64150, 64250]; "64,000" for 64000 ± 500 but never
    more than 1% of it (a round number is a rounding, not a licence to match anything nearby).
    """

    value: float
    tolerance: float
    integer: bool  # written without a decimal part or suffix


def numbers(text: str, limit: int = 2_000) -> list[Number]:
    """The numbers in normalised text, signs dropped (a sign is a word, not a figure).

    Thousands separators are folded ("1,234" = 1234); a comma list ("3,4,5") is three numbers; a
    suffix k/m/b/bn directly after the digits and not followed by a letter scales the value.
    """
    out: list[Number] = []
    for match in _NUMBER.finditer(text):
        raw = match.group(0)
        end = match.end()
        integer_part, _, decimals = raw.partition(".")
        integer_part = integer_part.rstrip(",")
        if "," in integer_part and not _THOUSANDS.fullmatch(integer_part):
            pieces = [p for p in integer_part.split(",") if p]
            for piece in pieces[:-1]:
                out.append(_make(piece, "", 1.0))
            integer_part = pieces[-1] if pieces else "0"
        multiplier = 1.0
        for suffix in ("bn", "k", "m", "b"):
            if text.startswith(suffix, end):
                after = text[end + len(suffix) : end + len(suffix) + 1]
                if not after.isalpha():
                    multiplier = _SUFFIX[suffix]
                    break
        out.append(_make(integer_part.replace(",", ""), decimals, multiplier))
        if len(out) >= limit:
            break
    return out[:limit]


def _make(integer_part: str, decimals: str, multiplier: float) -> Number:
    digits = integer_part.lstrip("0") or "0"
    # Keep at most 30 significant integer digits: beyond that the value is absurd anyway, and
    # float() of a huge digit string is slow and overflows.
    if len(digits) > 30:
        return Number(value=float("1e30"), tolerance=0.0, integer=True)
    value = float(f"{digits}.{decimals[:30]}" if decimals else digits) * multiplier
    if decimals or multiplier != 1.0:
        tolerance = 0.5 * 10.0 ** (-len(decimals)) * multiplier
        return Number(value=value, tolerance=tolerance, integer=False)
    trailing = len(digits) - len(digits.rstrip("0")) if digits != "0" else 0
    tolerance = max(0.5, min(0.5 * 10.0**trailing, 0.01 * value))
    return Number(value=value, tolerance=tolerance, integer=True)
