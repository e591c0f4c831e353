"""``EmbeddedSubstrate``: the bittensor v11 ``bt.Substrate`` protocol over the chain file.

``bt.Subtensor(network, substrate=EmbeddedSubstrate(path))`` is the real SDK
client; every read, intent and namespace it offers goes through the methods
here. Reads answer from current storage (the embedded chain keeps no history,
so a read pinned to an older block sees the head's state), except a commitment's: a pinned read of
``Commitments.CommitmentOf`` replays the recorded ``set_commitment`` calls up to that block. Writes are signed
extrinsics: verified, applied in one SQLite transaction, recorded with their
events, and reported as the SDK's typed ``ExtrinsicResult``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator, Optional

from bittensor import Balance, ChainError, ExtrinsicResult
from bittensor._generated.errors import ERRORS

from cortex.localchain import extrinsic as xt
from cortex.localchain.epoch import run_due_epochs
from cortex.localchain.pallets import DispatchError, account, commitment_at, dispatch
from cortex.localchain.runtime_api import CONSTANTS, RUNTIME, computed_item
from cortex.localchain.store import ChainFile, Storage

log = logging.getLogger(__name__)

_DOCS = {info.name: info.docs for info in ERRORS.values()}
_DOCS.update({"BadOrigin": "Bad origin.", "CallFiltered": "The call is not supported here."})


class EmbeddedSubstrate:
    """A chain in a SQLite file, shared by every process that opens the same path."""

    def __init__(self, path: str | Path):
        self.chain = ChainFile(path)
        self.path = Path(path)
        self.token_symbols: dict[int, str] = {}
        with self.chain.read() as s:
            self.genesis = s.meta("genesis_hash")
            self.genesis_time = float(s.meta("genesis_time"))
            self.seconds_per_block = float(s.meta("block_time"))
            self.manual = bool(s.meta("manual_blocks"))
            self._shield = (bytes.fromhex(s.meta("shield_public")), bytes.fromhex(s.meta("shield_secret")))

    # --- blocks ----------------------------------------------------------------

    def _head(self, s: Storage) -> int:
        if self.manual:
            return int(s.meta("head", 0))
        return int((time.time() - self.genesis_time) / self.seconds_per_block)

    def _sync(self) -> int:
        """Bring the chain up to the head block (running due epochs); returns the head."""
        with self.chain.read() as s:
            head = self._head(s)
            if int(s.meta("processed", -1)) >= head:
                return head
        with self.chain.transaction() as s:
            head = self._head(s)
            if int(s.meta("processed", -1)) < head:
                run_due_epochs(s, head)
                s.set_meta("processed", head)
            return head

    def advance(self, blocks: int) -> int:
        """Produce ``blocks`` blocks by hand (manual-block chains); returns the new head."""
        if not self.manual:
            raise ChainError("this chain's blocks follow the wall clock; `advance` needs --manual-blocks")
        with self.chain.transaction() as s:
            head = int(s.meta("head", 0)) + int(blocks)
            s.set_meta("head", head)
        self._sync()
        return head

    def hash_of(self, block: int) -> str:
        digest = hashlib.sha256(f"{self.genesis}:{block}".encode()).hexdigest()
        return f"0x{block:016x}{digest[:48]}"

    @staticmethod
    def number_of(block_hash: str) -> int:
        try:
            return int(block_hash[2:18], 16)
        except (TypeError, ValueError):
            raise ChainError(f"unknown block hash {block_hash!r}") from None

    def balance(self, rao: int, netuid: int = 0) -> Balance:
        return Balance.from_rao(int(rao))

    async def connect(self) -> None:
        self._sync()

    async def close(self) -> None:
        self.chain.close()

    async def block_hash(self, block: Optional[int] = None) -> str:
        head = self._sync()
        number = head if block is None else int(block)
        if number > head or number < 0:
            return None  # type: ignore[return-value]  # not produced yet, as on a node
        return self.hash_of(number)

    async def block_number(self) -> int:
        return self._sync()

    async def finalized_block_number(self) -> int:
        return self._sync()

    async def block_time(self) -> float:
        return self.seconds_per_block

    async def spec_version(self) -> int:
        return 1

    async def get_block(self, block_number: Optional[int] = None, block_hash: Optional[str] = None) -> Optional[dict]:
        head = self._sync()
        number = self.number_of(block_hash) if block_hash else head if block_number is None else int(block_number)
        if number > head:
            return None
        with self.chain.read() as s:
            rows = s.conn.execute(
                "SELECT module, function, params, signer FROM extrinsics WHERE block=? ORDER BY idx", (number,)
            ).fetchall()
        extrinsics = [{"call": {"call_module": m, "call_function": f, "call_args": p}, "address": a}
                      for m, f, p, a in rows]
        header = {"number": number, "hash": self.hash_of(number),
                  "parentHash": self.hash_of(number - 1) if number else "0x" + "00" * 32}
        return {"header": header, "extrinsics": extrinsics}

    # --- reads -------------------------------------------------------------------

    async def query(self, module: str, storage_function: str, params: Optional[list] = None,
                    block_hash: Optional[str] = None) -> Any:
        head = self._sync()
        item, params = f"{module}.{storage_function}", list(params or [])
        with self.chain.read() as s:
            if block_hash and item == "Commitments.CommitmentOf" and len(params) == 2:
                number = self.number_of(block_hash)
                if number < head:  # the past (pallets.commitment_at); the head's storage otherwise
                    return commitment_at(s, int(params[0]), str(params[1]), number)
            handled, value = computed_item(s, head, self.genesis_time, self.seconds_per_block, item, params)
            return value if handled else s.get(item, *params)

    async def map_has_entries(self, module: str, storage_function: str, params: list,
                              block_hash: Optional[str] = None) -> bool:
        return bool(await self.query_map(module, storage_function, params, block_hash))

    async def query_map(self, module: str, storage_function: str, params: Optional[list] = None,
                        block_hash: Optional[str] = None) -> list[tuple[Any, Any]]:
        self._sync()
        with self.chain.read() as s:
            return s.scan(f"{module}.{storage_function}", *(params or []))

    async def query_batch(self, module: str, storage_function: str, param_sets: list[list],
                          block_hash: Optional[str] = None) -> list[Any]:
        return [await self.query(module, storage_function, p, block_hash) for p in param_sets]

    async def runtime_call(self, api: str, method: str, params: list, block_hash: Optional[str] = None) -> Any:
        head = self._sync()
        fn = RUNTIME.get((api, method))
        if fn is None:
            raise ChainError(f"the embedded chain does not answer runtime call {api}.{method}")
        with self.chain.read() as s:
            return fn(s, head, list(params or []))

    async def constant(self, module: str, name: str) -> Any:
        return CONSTANTS.get((module, name))

    async def decode_scale(self, type_string: str, data: Any) -> Any:
        raise ChainError("the embedded chain stores decoded values; there is no SCALE to decode")

    async def blocks(self, *, finalized: bool = False) -> AsyncIterator[dict]:
        last = self._sync()
        while True:
            await asyncio.sleep(min(self.seconds_per_block, 0.2))
            head = self._sync()
            while last < head:
                last += 1
                yield {"header": {"number": last, "hash": self.hash_of(last),
                                  "parentHash": self.hash_of(last - 1)}}

    async def events(self, block_hash: Optional[str] = None) -> list[dict]:
        number = self.number_of(block_hash) if block_hash else self._sync()
        with self.chain.read() as s:
            rows = s.conn.execute("SELECT events FROM extrinsics WHERE block=? ORDER BY idx", (number,))
            return [e for (events,) in rows for e in json.loads(events)]

    # --- calls and fees -------------------------------------------------------------

    async def compose(self, call) -> Any:
        if not hasattr(call, "module") or not hasattr(call, "params"):
            raise ChainError(f"cannot compose {call!r}: expected a bittensor.calls call")
        xt.encode_call(call)  # refuses parameters that cannot be encoded
        try:
            xt.check_types(call)
        except xt.BadExtrinsic as exc:
            raise ChainError(str(exc)) from None
        return call

    async def estimate_fee(self, call, keypair) -> Balance:
        return Balance.from_rao(0)

    async def estimate_weight(self, call, keypair) -> dict:
        return {"ref_time": 0, "proof_size": 0}

    async def account_next_index(self, address: str) -> int:
        with self.chain.read() as s:
            return int(account(s, address)["nonce"])

    # --- writes ----------------------------------------------------------------------

    async def mev_next_key(self) -> Optional[bytes]:
        return self._shield[0]

    async def sign_extrinsic(self, call, keypair, *, nonce: int, period: int) -> tuple[bytes, str]:
        signed = xt.sign(call, keypair, nonce=nonce, period=period, genesis=self.genesis)
        return signed.raw, signed.hash

    async def find_extrinsic(self, extrinsic_hash: str, block_hash: str) -> Optional[ExtrinsicResult]:
        with self.chain.read() as s:
            row = s.conn.execute(
                "SELECT block, idx, success, error, events FROM extrinsics WHERE hash=? AND block=?",
                (extrinsic_hash, self.number_of(block_hash)),
            ).fetchone()
        return None if row is None else self._result(*row)

    async def submit(self, call, keypair, *, nonce: Optional[int] = None, period: Optional[int] = None,
                     wait_for_inclusion: bool = True, wait_for_finalization: bool = True) -> ExtrinsicResult:
        if nonce is None:
            nonce = await self.account_next_index(keypair.ss58_address)
        try:
            signed = xt.sign(call, keypair, nonce=nonce, period=period, genesis=self.genesis)
        except xt.BadExtrinsic as exc:
            return ExtrinsicResult(success=False, message=str(exc), error=ChainError(str(exc)))
        return self.apply(signed)

    def apply(self, signed: xt.Extrinsic) -> ExtrinsicResult:
        """Include a verified extrinsic in the head block (and a shielded inner one with it)."""
        self._sync()
        with self.chain.transaction() as s:
            block = self._head(s)
            record = account(s, signed.signer)
            if signed.nonce < int(record["nonce"]):
                message = "Invalid Transaction: Transaction is outdated"
                return ExtrinsicResult(success=False, message=message, error=ChainError(message))
            row = self._include(s, block, signed)
            if row[2] and (signed.module, signed.function) == ("MevShield", "submit_encrypted"):
                self._include_inner(s, block, signed)
        return self._result(*row)

    def _include(self, s: Storage, block: int, signed: xt.Extrinsic) -> tuple:
        record = account(s, signed.signer)
        record["nonce"] = max(int(record["nonce"]), signed.nonce) + 1
        s.put("System.Account", signed.signer, record)
        idx = s.conn.execute("SELECT COUNT(*) FROM extrinsics WHERE block=?", (block,)).fetchone()[0]
        error = None
        s.conn.execute("SAVEPOINT dispatch")
        try:
            if (signed.module, signed.function) == ("MevShield", "submit_encrypted"):
                events = [{"module_id": "MevShield", "event_id": "EncryptedSubmitted", "attributes": {}}]
            else:
                events = dispatch(s, block, signed.signer, signed.module, signed.function, signed.params)
            s.conn.execute("RELEASE dispatch")
            events.append({"module_id": "System", "event_id": "ExtrinsicSuccess", "attributes": {}})
        except DispatchError as exc:
            s.conn.execute("ROLLBACK TO dispatch")
            s.conn.execute("RELEASE dispatch")
            error = exc.name
            events = [{"module_id": "System", "event_id": "ExtrinsicFailed", "attributes": {"error": exc.name}}]
            log.info("extrinsic %s.%s from %s failed: %s", signed.module, signed.function, signed.signer, exc)
        params = json.dumps(xt.encode_value(signed.params))
        s.conn.execute(
            "INSERT INTO extrinsics(block,idx,hash,signer,module,function,params,success,error,events)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (block, idx, signed.hash, signed.signer, signed.module, signed.function, params,
             int(error is None), error, json.dumps(events)),
        )
        return block, idx, int(error is None), error, json.dumps(events)

    def _include_inner(self, s: Storage, block: int, carrier: xt.Extrinsic) -> None:
        try:
            raw = xt.shield_decrypt(bytes(carrier.params["ciphertext"]), *self._shield)
            inner = xt.parse(raw, self.genesis)
        except xt.BadExtrinsic as exc:
            log.warning("MEV shield dropped a submission from %s: %s", carrier.signer, exc)
            return
        if inner.nonce < int(account(s, inner.signer)["nonce"]):
            log.warning("MEV shield dropped a stale inner extrinsic from %s", inner.signer)
            return
        self._include(s, block, inner)

    def _result(self, block: int, idx: int, success: int, error: Optional[str], events: str) -> ExtrinsicResult:
        common = dict(block_hash=self.hash_of(block), extrinsic_id=f"{block}-{idx:04d}",
                      events=json.loads(events))
        if success:
            return ExtrinsicResult(success=True, message="Success", fee=Balance.from_rao(0), **common)
        docs = _DOCS.get(error or "", error or "failed")
        return ExtrinsicResult(success=False, message=docs, error=ChainError(docs, error), **common)

    # --- not offered by the embedded chain -----------------------------------------------

    async def prepare(self, call, **kwargs):
        raise ChainError("out-of-process signing is not supported by the embedded chain")

    async def submit_signature(self, unsigned, signature, **kwargs) -> ExtrinsicResult:
        raise ChainError("out-of-process signing is not supported by the embedded chain")

    async def submit_signed(self, extrinsic, keypair, **kwargs) -> ExtrinsicResult:
        raise ChainError("pre-signed extrinsics are not supported by the embedded chain")

    def multisig_account(self, signatories: list[str], threshold: int):
        raise ChainError("multisig is not supported by the embedded chain")

    async def submit_multisig(self, call, keypair, multisig_account, **kwargs) -> ExtrinsicResult:
        raise ChainError("multisig is not supported by the embedded chain")
