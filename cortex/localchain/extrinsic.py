"""Signed extrinsics on the embedded chain: encoding, signatures, and the MEV shield.

An extrinsic is a JSON payload ``{call, signer, nonce, era, genesis}`` signed with
the signer's sr25519/ed25519 key; the chain verifies the signature against the
signer's SS58 address before applying anything. Hashes are blake2b-256 of the
encoded extrinsic, as on a Substrate chain.

The MEV shield works as on subtensor: the chain publishes an ML-KEM-768 public
key (``MevShield.NextKey``), the SDK encrypts the signed inner extrinsic to it
(ML-KEM-768 + XChaCha20-Poly1305, the blob format of
``bittensor_core.encrypt_mlkem768``), and the block author decrypts and applies
the inner extrinsic in the same block.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import bittensor_core
from Crypto.Cipher import ChaCha20_Poly1305
from kyber_py.ml_kem import ML_KEM_768


class BadExtrinsic(Exception):
    """The transaction pool rejects the extrinsic (bad signature, encoding or ciphertext)."""


def encode_value(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"__bytes__": bytes(value).hex()}
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if hasattr(value, "rao"):  # a Balance
        return int(value.rao)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise BadExtrinsic(f"cannot encode call parameter of type {type(value).__name__}")


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return bytes.fromhex(value["__bytes__"])
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


@dataclass(frozen=True)
class Extrinsic:
    module: str
    function: str
    params: dict
    signer: str
    nonce: int
    raw: bytes

    @property
    def hash(self) -> str:
        return "0x" + hashlib.blake2b(self.raw, digest_size=32).hexdigest()


def encode_call(call: Any) -> dict:
    return {"module": call.module, "function": call.function, "params": encode_value(dict(call.params))}


def check_types(call: Any) -> None:
    """Refuse what the runtime's types cannot encode (as the SCALE encoder would, client-side)."""
    if (call.module, call.function) != ("Commitments", "set_commitment"):
        return
    fields = (call.params.get("info") or {}).get("fields") if isinstance(call.params.get("info"), dict) else None
    for entry in fields or []:
        for variant in entry if isinstance(entry, list) else [entry]:
            for name, value in (variant.items() if isinstance(variant, dict) else []):
                size = len(bytes.fromhex(value[2:])) if isinstance(value, str) else len(bytes(value))
                if name.startswith("Raw") and (size > 128 or name != f"Raw{size}"):
                    raise BadExtrinsic(
                        f"cannot encode {name} with {size} bytes: a commitment field holds at most "
                        "128 bytes (Raw0..Raw128, the variant naming the exact length)"
                    )


def sign(call: Any, keypair: Any, *, nonce: int, period: int | None, genesis: str) -> Extrinsic:
    payload = json.dumps(
        {"call": encode_call(call), "signer": keypair.ss58_address, "nonce": int(nonce),
         "era": period, "genesis": genesis},
        sort_keys=True, separators=(",", ":"),
    ).encode()
    signature = bytes(keypair.sign(payload))
    raw = json.dumps({"payload": payload.hex(), "signature": signature.hex()}).encode()
    return parse(raw, genesis)


def parse(raw: bytes, genesis: str) -> Extrinsic:
    """Decode and verify a signed extrinsic; raises BadExtrinsic when it is not valid."""
    try:
        outer = json.loads(raw)
        payload = bytes.fromhex(outer["payload"])
        signature = bytes.fromhex(outer["signature"])
        body = json.loads(payload)
        call, signer = body["call"], str(body["signer"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadExtrinsic(f"Invalid Transaction: cannot decode extrinsic ({exc})") from None
    if body.get("genesis") != genesis:
        raise BadExtrinsic("Invalid Transaction: signed for another chain (genesis mismatch)")
    try:
        valid = bittensor_core.verify_signature(payload, signature, signer)
    except Exception:  # noqa: BLE001 - a malformed address or signature is just invalid
        valid = False
    if not valid:
        raise BadExtrinsic("Invalid Transaction: Invalid signing address or bad signature")
    return Extrinsic(
        module=str(call["module"]), function=str(call["function"]),
        params=decode_value(call["params"]), signer=signer, nonce=int(body["nonce"]), raw=raw,
    )


def new_shield_key() -> tuple[bytes, bytes]:
    """A fresh ML-KEM-768 (public, secret) key pair for the MEV shield."""
    public, secret = ML_KEM_768.keygen()
    return public, secret


def shield_decrypt(blob: bytes, public: bytes, secret: bytes) -> bytes:
    """Open a ``[key_hash(16)][u16 kem_len][kem_ct][nonce24][aead_ct]`` blob."""
    try:
        key_hash, body = blob[:16], blob[16:]
        if key_hash != _key_hash(public):
            raise BadExtrinsic("MevShield: ciphertext was made for another key")
        kem_len = int.from_bytes(body[:2], "little")
        kem, nonce, sealed = body[2 : 2 + kem_len], body[2 + kem_len : 26 + kem_len], body[26 + kem_len :]
        shared = ML_KEM_768.decaps(secret, kem)
        cipher = ChaCha20_Poly1305.new(key=shared, nonce=nonce)
        return cipher.decrypt_and_verify(sealed[:-16], sealed[-16:])
    except BadExtrinsic:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to open is a rejected carrier
        raise BadExtrinsic(f"MevShield: cannot decrypt the submission ({exc})") from None


def _key_hash(data: bytes) -> bytes:
    """twox_128(public key): the prefix the SDK's encryptor puts on every blob for this key."""
    return bittensor_core.encrypt_mlkem768(data, b"", include_key_hash=True)[:16]
