"""The commitment codec: exact round trips, strict decoding, hotkey binding, the 128-byte bound."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from huggingface_hub.utils import HFValidationError, validate_repo_id

from cortex.errors import CortexError
from cortex.protocol.commitment import (
    COMPETITION_ID_RE,
    MAX_BYTES,
    CommitmentError,
    ModelCommitment,
    is_repo_id,
    max_repo_id_length,
)
from cortex.protocol.hashing import content_hash, salted_hash

ALICE = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
BOB = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
CONTENT = hashlib.sha256(b"adapter files").hexdigest()
SHA1 = "6f6073b423013f6a7d4d9f39144961bfbfbc386b"
# The worked example in docs/protocol.md.
EXAMPLE = "cx1:a:cortex-tiny:alice/cortex-dora-r8:b2BztCMBP2p9TZ85FElhv7-8OGs:q9xQtnKi1YNLktPqREAYFQ"

part = st.from_regex(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,20}[A-Za-z0-9_])?", fullmatch=True)
repo_ids = st.builds(lambda a, b: f"{a}/{b}", part, part).filter(is_repo_id)
competition_ids = st.from_regex(COMPETITION_ID_RE, fullmatch=True)
hex_of = lambda n: st.binary(min_size=n, max_size=n).map(bytes.hex)  # noqa: E731
commitments = st.builds(
    ModelCommitment,
    competition_id=competition_ids,
    repo_id=repo_ids,
    revision=st.one_of(hex_of(20), hex_of(32)),
    salted_hash=hex_of(16),
    kind=st.sampled_from(["adapter", "base"]),
)


def make(repo: str = "alice/cortex-dora-r8", revision: str = SHA1, **kw) -> ModelCommitment:
    return ModelCommitment.for_content("cortex-tiny", repo, revision, CONTENT, ALICE, **kw)


def test_example_in_docs_decodes_and_verifies():
    commitment = ModelCommitment.decode(EXAMPLE)
    assert commitment == make()
    assert commitment.revision == SHA1 and commitment.kind == "adapter"
    assert commitment.verify(CONTENT, ALICE)
    assert len(EXAMPLE) == 89
    assert EXAMPLE in (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


@given(commitments)
def test_round_trip(commitment: ModelCommitment):
    try:
        text = commitment.encode()
    except CommitmentError:
        assume(False)
    assert len(text.encode("ascii")) <= MAX_BYTES
    assert ModelCommitment.decode(text) == commitment
    assert ModelCommitment.decode(text.encode("ascii")) == commitment


@given(commitments)
def test_size_bound_is_exact(commitment: ModelCommitment):
    """encode fits iff the repo id is within max_repo_id_length; the error says how many fit."""
    fit = max_repo_id_length(commitment.competition_id, len(commitment.revision))
    if len(commitment.repo_id) <= fit:
        assert len(commitment.encode()) <= MAX_BYTES
    else:
        with pytest.raises(CommitmentError, match=f"use a shorter repo name; at most {fit} "):
            commitment.encode()


def test_long_repo_id_names_the_limit():
    fit = max_repo_id_length("cortex-tiny")
    ok = make(repo="a/" + "b" * (fit - 2))
    assert len(ok.encode()) == MAX_BYTES
    with pytest.raises(CommitmentError, match=f"at most {fit} characters fit"):
        make(repo="a/" + "b" * (fit - 1)).encode()
    # A 64-hex local-store revision packs into 43 characters and leaves less room.
    assert max_repo_id_length("cortex-tiny", 64) == fit - 16


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
@example("cx1:a:cortex-tiny:alice/m:" + "A" * 27 + ":" + "A" * 22)
@example("cx1:a:cortex-tiny:alice/m:" + "A" * 26 + "B:" + "A" * 22)
def test_decode_arbitrary_input_raises_only_commitment_error(data):
    try:
        commitment = ModelCommitment.decode(data)
    except CommitmentError as exc:
        assert isinstance(exc, CortexError) and "\n" not in str(exc) and str(exc)
    else:  # whatever decodes is canonical: it encodes back to the very same string
        text = data.decode("ascii") if isinstance(data, bytes) else data
        assert commitment.encode() == text


@given(commitments, st.integers(min_value=0, max_value=200), st.characters(), st.integers(0, 2))
def test_mutated_commitments_decode_canonically_or_fail(commitment, at, char, how):
    try:
        text = commitment.encode()
    except CommitmentError:
        assume(False)
    at %= len(text)
    mutated = [text[:at] + char + text[at + 1 :], text[:at] + char + text[at:], text[:at] + text[at + 1 :]]
    try:
        decoded = ModelCommitment.decode(mutated[how])
    except CommitmentError:
        return
    assert decoded.encode() == mutated[how]
    assert (decoded == commitment) == (mutated[how] == text)


@given(st.text(min_size=1, max_size=48), st.text(min_size=1, max_size=48))
def test_copied_commitment_fails_for_another_hotkey(owner: str, copier: str):
    assume(owner != copier)
    content = hashlib.sha256(owner.encode()).hexdigest()
    original = ModelCommitment.for_content("cortex-tiny", "alice/m", SHA1, content, owner)
    copied = ModelCommitment.decode(original.encode())  # the copier commits the same string
    assert copied.verify(content, owner)
    assert not copied.verify(content, copier)


def test_verify_checks_content_and_uses_the_salted_hash_prefix(tmp_path: Path):
    (tmp_path / "adapter_config.json").write_text("{}")
    folder_hash = content_hash(tmp_path)
    commitment = ModelCommitment.for_content("cortex-tiny", "alice/m", SHA1, folder_hash, ALICE)
    assert commitment.salted_hash == salted_hash(folder_hash, ALICE)[:32]
    assert commitment.verify(folder_hash, ALICE)
    assert not commitment.verify(CONTENT, ALICE)
    assert not commitment.verify(folder_hash, BOB)
    with pytest.raises(CommitmentError, match="content hash"):
        commitment.verify("not-hex", ALICE)


def test_base_pointer_and_local_revision():
    local = hashlib.sha256(b"merged base").hexdigest()
    pointer = ModelCommitment.for_content("cortex-tiny", "cortex/base", local, CONTENT, BOB, kind="base")
    text = pointer.encode()
    assert text.startswith("cx1:b:cortex-tiny:cortex/base:") and len(text) == 96
    assert ModelCommitment.decode(text) == pointer


@given(repo_ids)
def test_valid_repo_ids_are_valid_for_the_hub(repo_id: str):
    validate_repo_id(repo_id)


@pytest.mark.parametrize(
    "repo_id",
    ["model", "a/b/c", "-a/b", "a/b-", "a/.b", "a--b/c", "a/b..c", "a/b.git", "a/b c", "a/é", "", "a/"],
)
def test_bad_repo_ids(repo_id: str):
    assert not is_repo_id(repo_id)
    with pytest.raises(CommitmentError, match="repo id"):
        make(repo=repo_id)
    if repo_id.count("/") == 1 and repo_id.isascii():  # agree with the Hub's own check
        with pytest.raises(HFValidationError):
            validate_repo_id(repo_id)


GOOD = EXAMPLE.split(":")


def variant(index: int, value: str) -> str:
    return ":".join(GOOD[:index] + [value] + GOOD[index + 1 :])


@pytest.mark.parametrize(
    "data, message",
    [
        ("", "empty"),
        (b"", "empty"),
        (EXAMPLE + " ", "whitespace"),
        (" " + EXAMPLE, "whitespace"),
        (EXAMPLE.replace(":a:", ":a\t:"), "whitespace"),
        (EXAMPLE + "\n", "whitespace"),
        (EXAMPLE.replace("alice", "alicé"), "not ASCII"),
        (EXAMPLE.encode().replace(b"alice", b"al\xffce"), "not ASCII"),
        (EXAMPLE.replace("alice/", "a" * 50 + "/"), "over the 128"),
        (b"x" * 129, "over the 128"),
        (variant(0, "cx2"), "unsupported commitment version 'cx2'"),
        (variant(0, "CX1"), "not a Cortex commitment"),
        ("alice/m:" + SHA1 + ":hash:cortex-tiny", "not a Cortex commitment"),
        (EXAMPLE + ":", "expected 6 fields"),
        (":".join(GOOD[:5]), "expected 6 fields"),
        (variant(1, "x"), "kind"),
        (variant(1, "adapter"), "kind"),
        (variant(2, "Cortex-Tiny"), "competition id"),
        (variant(2, ""), "competition id"),
        (variant(3, "alice"), "repo id"),
        (variant(3, "alice/bad--name"), "repo id"),
        (variant(4, SHA1), "revision must be 27 or 43 base64url"),
        (variant(4, GOOD[4][:-1]), "revision must be"),
        (variant(4, GOOD[4][:-1] + "+"), "revision must be"),
        (variant(4, GOOD[4][:-1] + "t"), "not canonical"),
        (variant(5, GOOD[5] + "A"), "salted hash must be 22"),
        (variant(5, GOOD[5][:-1] + "B"), "not canonical"),
        (None, "must be str or bytes"),
        (42, "must be str or bytes"),
    ],
)
def test_malformed_commitments(data, message: str):
    with pytest.raises(CommitmentError, match=message):
        ModelCommitment.decode(data)


@pytest.mark.parametrize(
    "field, value",
    [
        ("revision", SHA1.upper()),
        ("revision", SHA1[:-1]),
        ("salted_hash", "ab" * 32),
        ("competition_id", "-tiny"),
        ("kind", "merged"),
    ],
)
def test_constructor_validates(field: str, value: str):
    good = dict(competition_id="cortex-tiny", repo_id="alice/m", revision=SHA1, salted_hash="ab" * 16)
    with pytest.raises(CommitmentError):
        ModelCommitment(**{**good, field: value})
    with pytest.raises(CommitmentError, match="hotkey"):
        ModelCommitment.for_content("cortex-tiny", "alice/m", SHA1, CONTENT, "")
