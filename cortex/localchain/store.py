"""The embedded chain's storage: one SQLite file that several processes share.

The layout mirrors a Substrate node's: every value lives under a storage item
(``"SubtensorModule.Uids"``) and up to three keys (``netuid``, ``hotkey``, …),
stored as the plain decoded value the SDK expects to read back (JSON). Reads of
a whole map scan by key prefix, as ``query_map`` does on a real node.

Every write happens inside ``transaction()``: ``BEGIN IMMEDIATE`` takes the
file's write lock, so two processes never interleave their writes, and SQLite's
journal makes a transaction all-or-nothing even when the process is killed
half-way. WAL mode lets readers go on while a writer works.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from cortex.errors import CortexError

SCHEMA_VERSION = 1
APPLICATION_ID = 0x43525458  # "CRTX": marks the file as a Cortex embedded chain

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS storage (
    item TEXT NOT NULL, k1 TEXT NOT NULL, k2 TEXT NOT NULL, k3 TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (item, k1, k2, k3)
);
CREATE TABLE IF NOT EXISTS extrinsics (
    block INTEGER NOT NULL, idx INTEGER NOT NULL, hash TEXT NOT NULL UNIQUE,
    signer TEXT NOT NULL, module TEXT NOT NULL, function TEXT NOT NULL,
    params TEXT NOT NULL, success INTEGER NOT NULL, error TEXT, events TEXT NOT NULL,
    PRIMARY KEY (block, idx)
);
CREATE TABLE IF NOT EXISTS events (
    block INTEGER NOT NULL, idx INTEGER NOT NULL, event TEXT NOT NULL,
    PRIMARY KEY (block, idx)
);
"""


class ChainFileError(CortexError):
    """The chain file is missing, corrupt, or from another version."""


def _key(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Storage:
    """Typed access to storage items inside one open transaction (or a read)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def get(self, item: str, *keys: Any, default: Any = None) -> Any:
        row = self.conn.execute(
            "SELECT value FROM storage WHERE item=? AND k1=? AND k2=? AND k3=?",
            (item, *self._keys(keys)),
        ).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, item: str, *keys_and_value: Any) -> None:
        *keys, value = keys_and_value
        self.conn.execute(
            "INSERT OR REPLACE INTO storage(item,k1,k2,k3,value) VALUES (?,?,?,?,?)",
            (item, *self._keys(keys), json.dumps(value, separators=(",", ":"))),
        )

    def delete(self, item: str, *keys: Any) -> None:
        self.conn.execute(
            "DELETE FROM storage WHERE item=? AND k1=? AND k2=? AND k3=?", (item, *self._keys(keys))
        )

    def scan(self, item: str, *prefix: Any) -> list[tuple[Any, Any]]:
        """``(next key, value)`` for every entry of ``item`` under ``prefix`` (a map read).

        With a one-key prefix on a three-key item the key returned is the pair of
        the remaining keys, as a real node decodes double-map keys.
        """
        columns = ("k1", "k2", "k3")
        where = " AND ".join(f"{c}=?" for c in columns[: len(prefix)])
        sql = "SELECT k1,k2,k3,value FROM storage WHERE item=?" + (f" AND {where}" if where else "")
        out = []
        for row in self.conn.execute(sql, (item, *(_key(p) for p in prefix))):
            rest = [json.loads(k) for k in row[len(prefix) : 3] if k != ""]
            key = rest[0] if len(rest) == 1 else tuple(rest)
            out.append((key, json.loads(row[3])))
        return out

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO meta(key,value) VALUES (?,?)", (key, json.dumps(value))
        )

    @staticmethod
    def _keys(keys: tuple) -> tuple[str, str, str]:
        if len(keys) > 3:
            raise ValueError("storage items take at most three keys")
        encoded = [_key(k) for k in keys]
        return tuple(encoded + [""] * (3 - len(encoded)))  # type: ignore[return-value]


class ChainFile:
    """One process's handle on the chain file (thread-safe; one connection per thread)."""

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise ChainFileError(
                f"no embedded chain at {self.path}: create one with "
                f"`cortex chain init --path {self.path} --netuid 1`"
            )
        self._local = threading.local()
        conn = self._conn()
        if create:
            self._create(conn)
        self._check(conn)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
                conn.execute("PRAGMA busy_timeout=60000")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.DatabaseError as exc:
                raise ChainFileError(f"{self.path} is not a readable chain file ({exc})") from None
            self._local.conn = conn
        return conn

    def _create(self, conn: sqlite3.Connection) -> None:
        if os.path.getsize(self.path) > 0 and self._application_id(conn) == APPLICATION_ID:
            raise ChainFileError(f"{self.path} already holds a chain; pick another --path")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _application_id(self, conn: sqlite3.Connection) -> int:
        try:
            return int(conn.execute("PRAGMA application_id").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise ChainFileError(
                f"{self.path} is corrupt or not a chain file ({exc}); "
                "restore it or create a new one with `cortex chain init`"
            ) from None

    def _check(self, conn: sqlite3.Connection) -> None:
        if self._application_id(conn) != APPLICATION_ID:
            raise ChainFileError(
                f"{self.path} is not a Cortex chain file; create one with `cortex chain init`"
            )
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version != SCHEMA_VERSION:
            raise ChainFileError(
                f"{self.path} was written by chain schema v{version}, this is v{SCHEMA_VERSION}: "
                "create a new chain with `cortex chain init`"
            )
        try:
            conn.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ChainFileError(f"{self.path} is corrupt ({exc})") from None

    @contextmanager
    def transaction(self) -> Iterator[Storage]:
        """A write transaction: all of it is applied, or none of it."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield Storage(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[Storage]:
        """A consistent snapshot for reads (a deferred transaction)."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield Storage(conn)
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
