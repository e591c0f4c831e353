"""The on-chain commitment: one short, strict, versioned ASCII string that points at a model.

A miner (kind ``adapter``) or the averager (kind ``base``) writes it into the raw commitment
field of its hotkey, which holds at most 128 bytes (DESIGN.md §5). Six fields joined by ``:``::

    cx1:KIND:COMPETITION:NAMESPACE/NAME:REVISION:SALTED

``cx1`` is the version tag, KIND is ``a`` (adapter) or ``b`` (base), REVISION and SALTED are raw
bytes in unpadded base64url (RFC 4648 §5): a 40-hex Hub commit sha takes 27 characters instead of
40, a 64-hex local-store content hash 43 instead of 64, which leaves room for real repo names.
SALTED keeps the first 128 bits of ``salted_hash(content_hash, hotkey)``; docs/protocol.md says
why that is enough. Exactly one string encodes each commitment: ``decode`` rejects anything
``encode`` would not have produced, so two validators never read one string two ways.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from dataclasses import dataclass
from typing import Literal

from cortex.errors import CortexError
from cortex.protocol.hashing import salted_hash as _salted_hash

VERSION = "cx1"
MAX_BYTES = 128  # the raw commitment field's limit
SALTED_HASH_BYTES = 16  # 128 bits kept of sha256(content_hash ‖ hotkey)
FORMAT = "cx1:KIND:COMPETITION:NAMESPACE/NAME:REVISION:SALTED"
FIELDS = 6

Kind = Literal["adapter", "base"]
KIND_CODES: dict[str, str] = {"adapter": "a", "base": "b"}
_KINDS_BY_CODE = {code: kind for kind, code in KIND_CODES.items()}

# Competition ids: lowercase, 1-32 characters, start with a letter, end with a letter or digit.
COMPETITION_ID_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?")
# Hugging Face repo ids (huggingface_hub.utils.validate_repo_id), with the namespace required:
# ASCII letters, digits, '_', '-', '.'; each part starts and ends with a letter, digit or '_'.
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
REPO_ID_RE = re.compile(rf"{_REPO_PART}/{_REPO_PART}")
REVISION_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # Hub commit sha | local content hash
CONTENT_HASH_RE = re.compile(r"[0-9a-f]{64}")
_SALTED_RE = re.compile(rf"[0-9a-f]{{{2 * SALTED_HASH_BYTES}}}")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_VERSION_LIKE_RE = re.compile(r"cx[0-9]+")


class CommitmentError(CortexError):
    """A commitment that cannot be encoded or decoded; the one error type this module raises."""


def is_repo_id(repo_id: object) -> bool:
    """True for a Hub repo id ``namespace/name`` that the Hub itself would accept."""
    return (
        isinstance(repo_id, str)
        and REPO_ID_RE.fullmatch(repo_id) is not None
        and "--" not in repo_id
        and ".." not in repo_id
        and not repo_id.endswith(".git")
    )


def packed_length(n_bytes: int) -> int:
    """Characters that ``n_bytes`` of raw bytes take in unpadded base64url."""
    return -(-4 * n_bytes // 3)


def max_repo_id_length(competition_id: str, revision_hex_chars: int = 40) -> int:
    """The longest repo id that fits in MAX_BYTES next to this competition id and revision."""
    others = (VERSION, "k", competition_id)  # "k": the one-character kind code
    fixed = sum(map(len, others)) + packed_length(revision_hex_chars // 2)
    fixed += packed_length(SALTED_HASH_BYTES) + FIELDS - 1  # FIELDS - 1 separators
    return MAX_BYTES - fixed


def _pack(hex_text: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hex_text)).rstrip(b"=").decode("ascii")


def _unpack(text: str, what: str, sizes: tuple[int, ...]) -> str:
    """Canonical unpadded base64url of one of ``sizes`` bytes → lowercase hex."""
    lengths = {packed_length(n): n for n in sizes}
    if len(text) not in lengths or _B64URL_RE.fullmatch(text) is None:
        expected = " or ".join(str(n) for n in lengths)
        raise CommitmentError(
            f"{what} must be {expected} base64url characters, got {len(text)}: {text[:48]!r}"
        )
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CommitmentError(f"{what} is not valid base64url: {text!r}") from exc
    if len(raw) != lengths[len(text)] or _pack(raw.hex()) != text:
        raise CommitmentError(f"{what} is not canonical base64url (unused bits set): {text!r}")
    return raw.hex()


def _as_text(data: object) -> str:
    """The raw field as a printable ASCII string of at most MAX_BYTES, or CommitmentError."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if len(raw) > MAX_BYTES:
            raise CommitmentError(f"commitment is {len(raw)} bytes, over the {MAX_BYTES} limit")
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise CommitmentError(f"commitment is not ASCII (byte {exc.start})") from None
    elif isinstance(data, str):
        if not data.isascii():
            raise CommitmentError(f"commitment is not ASCII: {data[:48]!r}")
        text = data
    else:
        raise CommitmentError(f"commitment must be str or bytes, got {type(data).__name__}")
    if not text:
        raise CommitmentError(f"commitment is empty; expected {FORMAT}")
    if len(text) > MAX_BYTES:
        raise CommitmentError(f"commitment is {len(text)} bytes, over the {MAX_BYTES}-byte limit")
    for position, char in enumerate(text):
        if not "!" <= char <= "~":
            raise CommitmentError(
                f"commitment has whitespace or a control character {char!r} at position {position}"
            )
    return text


@dataclass(frozen=True)
class ModelCommitment:
    """A pointer to one exact model revision, bound to the committing hotkey by ``salted_hash``.

    ``revision`` and ``salted_hash`` are lowercase hex here; only the wire form packs them.
    """

    competition_id: str
    repo_id: str
    revision: str  # 40-hex Hub commit sha or 64-hex local-store content hash
    salted_hash: str  # first 128 bits (32 hex) of sha256(content_hash ‖ hotkey)
    kind: Kind = "adapter"  # "base": the averager's pointer to the merged base

    def __post_init__(self) -> None:
        if not isinstance(self.competition_id, str) or not COMPETITION_ID_RE.fullmatch(
            self.competition_id
        ):
            raise CommitmentError(
                f"competition id must be 1-32 of a-z, 0-9, '-' starting with a letter, "
                f"got {self.competition_id!r}"
            )
        if not is_repo_id(self.repo_id):
            raise CommitmentError(
                f"repo id must be a Hugging Face 'namespace/name' (letters, digits, '_', '-', '.'; "
                f"no '--', '..' or '.git' suffix), got {self.repo_id!r}"
            )
        if not isinstance(self.revision, str) or not REVISION_RE.fullmatch(self.revision):
            raise CommitmentError(
                f"revision must be a 40-hex commit sha or a 64-hex content hash (lowercase), "
                f"got {self.revision!r}"
            )
        if not isinstance(self.salted_hash, str) or not _SALTED_RE.fullmatch(self.salted_hash):
            raise CommitmentError(
                f"salted hash must be {2 * SALTED_HASH_BYTES} lowercase hex characters "
                f"(use ModelCommitment.for_content), got {self.salted_hash!r}"
            )
        if self.kind not in KIND_CODES:
            raise CommitmentError(f"kind must be 'adapter' or 'base', got {self.kind!r}")

    @classmethod
    def for_content(
        cls,
        competition_id: str,
        repo_id: str,
        revision: str,
        content_hash: str,
        hotkey: str,
        kind: Kind = "adapter",
    ) -> ModelCommitment:
        """The commitment ``hotkey`` makes for a model folder whose ``content_hash`` is given."""
        return cls(competition_id, repo_id, revision, _expected(content_hash, hotkey), kind)

    def verify(self, content_hash: str, hotkey: str) -> bool:
        """Whether this commitment was made by ``hotkey`` for these contents (constant-time)."""
        return hmac.compare_digest(self.salted_hash, _expected(content_hash, hotkey))

    def encode(self) -> str:
        """The wire string, at most MAX_BYTES ASCII bytes."""
        text = ":".join(
            (
                VERSION,
                KIND_CODES[self.kind],
                self.competition_id,
                self.repo_id,
                _pack(self.revision),
                _pack(self.salted_hash),
            )
        )
        if len(text) > MAX_BYTES:
            fit = max_repo_id_length(self.competition_id, len(self.revision))
            raise CommitmentError(
                f"commitment would be {len(text)} bytes, over the {MAX_BYTES}-byte limit: repo id "
                f"{self.repo_id!r} has {len(self.repo_id)} characters; use a shorter repo name; "
                f"at most {fit} characters fit (namespace/name included) with competition "
                f"{self.competition_id!r}"
            )
        return text

    @classmethod
    def decode(cls, data: str | bytes) -> ModelCommitment:
        """Parse a raw commitment field strictly; anything malformed raises CommitmentError."""
        text = _as_text(data)
        parts = text.split(":")
        if parts[0] != VERSION:
            if _VERSION_LIKE_RE.fullmatch(parts[0]):
                raise CommitmentError(
                    f"unsupported commitment version {parts[0]!r}: this cortex reads {VERSION!r}; "
                    f"upgrade cortex"
                )
            raise CommitmentError(f"not a Cortex commitment: expected {FORMAT}, got {text[:48]!r}")
        if len(parts) != FIELDS:
            raise CommitmentError(
                f"expected {FIELDS} fields joined by ':' ({FORMAT}), got {len(parts)}"
            )
        _, code, competition_id, repo_id, revision, salted = parts
        if code not in _KINDS_BY_CODE:
            raise CommitmentError(f"kind must be 'a' (adapter) or 'b' (base), got {code!r}")
        commitment = cls(
            competition_id=competition_id,
            repo_id=repo_id,
            revision=_unpack(revision, "revision", (20, 32)),
            salted_hash=_unpack(salted, "salted hash", (SALTED_HASH_BYTES,)),
            kind=_KINDS_BY_CODE[code],  # type: ignore[arg-type]
        )
        if commitment.encode() != text:  # every field is canonical, so this cannot differ
            raise CommitmentError(f"commitment is not in canonical form: {text[:48]!r}")
        return commitment


def _expected(content_hash: str, hotkey: str) -> str:
    if not isinstance(content_hash, str) or not CONTENT_HASH_RE.fullmatch(content_hash):
        raise CommitmentError(
            f"content hash must be 64 lowercase hex characters (from content_hash), "
            f"got {content_hash!r}"
        )
    if not isinstance(hotkey, str) or not hotkey:
        raise CommitmentError(f"hotkey must be a non-empty ss58 address string, got {hotkey!r}")
    return _salted_hash(content_hash, hotkey)[: 2 * SALTED_HASH_BYTES]
