"""A durable, resumable row store: one SQLite file, one JSON row per finished unit of work.

Every row carries its full key (unit key + config hash); writes commit per unit, so a run killed
at any moment loses at most the unit in flight, and a rerun skips every key already stored. The
store's `meta` table holds the run identity (`harness.runner.identity`); `check_identity` compares
it read-only, before anything is written. `lock` keeps one writer per store file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from harness.runner.identity import differences

_SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    unit TEXT PRIMARY KEY,
    config_hash TEXT NOT NULL,
    rows TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(ValueError):
    """A store that cannot be used: corrupt, of another run, locked, or not writable."""


def _unreadable(path: Path, err: Exception) -> StoreError:
    return StoreError(f"{path} is not a readable results store ({err}); move it away or use another --out")


def lock(path: Path) -> FileLock:
    """Acquire the one-writer lock of store `path` at once, or raise a StoreError naming it."""
    lock_path = Path(f"{path}.lock")
    file_lock = FileLock(str(lock_path), timeout=0)
    try:
        file_lock.acquire()
    except Timeout:
        raise StoreError(
            f"another process is writing to {path} (lock {lock_path}); wait for it to finish "
            "or use another --out folder"
        ) from None
    return file_lock


def read_meta(path: Path) -> dict[str, str]:
    """The meta table of an existing store, opened read-only ({} if it has none)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            if conn.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone() is None:
                return {}
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise _unreadable(path, err) from None


def check_identity(path: Path, identity: Mapping[str, Any], ignore: Iterable[str] = ()) -> None:
    """Raise a StoreError naming each difference if the store at `path` holds another run.

    `ignore`: top-level identity fields not compared (reading results does not need the same machine).
    """
    if not path.exists():
        return
    meta = read_meta(path)
    if not meta:
        return  # an empty file left by an interrupted first open
    if "identity" not in meta:
        raise StoreError(
            f"{path} was written by an older fvit-bench without a run identity; use another "
            "--out folder or delete the store to start over"
        )
    stored = json.loads(meta["identity"])
    skip = set(ignore)
    diff = differences(
        {k: v for k, v in stored.items() if k not in skip}, {k: v for k, v in identity.items() if k not in skip}
    )
    if diff:
        raise StoreError(
            f"{path} holds results of another run; differences: {'; '.join(diff)}. Use another "
            "--out folder, or delete the store to start over (README: Resuming, devices and errors)"
        )


class RowStore:
    """SQLite-backed store of finished units; each unit holds a list of per-item rows."""

    def __init__(self, path: str | Path, config_hash: str, identity: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.config_hash = config_hash
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=60)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_SCHEMA)
            stored = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as err:
            raise _unreadable(self.path, err) from None
        if "config_hash" not in stored:
            with self.conn:
                self.conn.execute("INSERT INTO meta VALUES ('config_hash', ?)", (config_hash,))
                if identity is not None:
                    self.conn.execute("INSERT INTO meta VALUES ('identity', ?)", (json.dumps(identity),))
        elif stored["config_hash"] != config_hash:
            self.conn.close()
            raise StoreError(
                f"{self.path} holds results of another configuration (hash {stored['config_hash']}, this run "
                f"{config_hash}); use another --out folder or delete the store to start over"
            )
        self.identity = json.loads(stored["identity"]) if "identity" in stored else identity

    def done(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT unit FROM units")}

    def put(self, unit: str, rows: Iterable[Mapping]) -> None:
        """Store a finished unit atomically (one transaction)."""
        try:
            self._insert(unit, json.dumps(list(rows)))
        except sqlite3.OperationalError as err:
            raise OSError(
                f"cannot write to {self.path}: {err} (the units stored so far are kept; free space "
                "or fix permissions and rerun the same command to resume)"
            ) from None

    def _insert(self, unit: str, payload: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO units VALUES (?, ?, ?)", (unit, self.config_hash, payload))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def frame(self, units: Iterable[str] | None = None, order: Any = None) -> pd.DataFrame:
        """Stored rows as a DataFrame (only `units` if given), ordered by `order(unit key)` (default: the key)."""
        wanted = None if units is None else set(units)
        stored = [(u, p) for u, p in self.conn.execute("SELECT unit, rows FROM units") if wanted is None or u in wanted]
        rows: list[dict] = []
        for _, payload in sorted(stored, key=lambda up: order(up[0]) if order else up[0]):
            rows.extend(json.loads(payload))
        return pd.DataFrame(rows)

    def merge_from(self, other: str | Path) -> int:
        """Copy every unit of another store of the same configuration; returns how many were new."""
        meta = read_meta(Path(other))
        if self.identity is not None and "identity" in meta:
            diff = differences(self.identity, json.loads(meta["identity"]))
            if diff:
                raise StoreError(f"{other} holds results of another run; differences: {'; '.join(diff)}")
        src = RowStore(other, self.config_hash)
        try:
            before = len(self.done())
            with self.conn:
                for unit, chash, payload in src.conn.execute("SELECT unit, config_hash, rows FROM units"):
                    self.conn.execute("INSERT OR IGNORE INTO units VALUES (?, ?, ?)", (unit, chash, payload))
                for key, value in src.conn.execute("SELECT key, value FROM meta WHERE key='skipped_items'"):
                    merged = sorted(
                        {json.dumps(s) for s in json.loads(value)} | {json.dumps(s) for s in self.get_meta(key, [])}
                    )
                    self.conn.execute(
                        "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps([json.loads(s) for s in merged]))
                    )
        finally:
            src.close()
        return len(self.done()) - before

    def close(self) -> None:
        self.conn.close()


def replace_atomically(tmp: Path, target: Path) -> None:
    """Move a finished temporary store over `target` (with its WAL checkpointed first)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, target)
