"""A durable, resumable row store: one SQLite file, one JSON row per finished unit of work.

Every row carries its full key (unit key + config hash); writes commit per unit, so a run killed
at any moment loses at most the unit in flight, and a rerun skips every key already stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

_SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    unit TEXT PRIMARY KEY,
    config_hash TEXT NOT NULL,
    rows TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class RowStore:
    """SQLite-backed store of finished units; each unit holds a list of per-item rows."""

    def __init__(self, path: str | Path, config_hash: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.config_hash = config_hash
        self.conn = sqlite3.connect(str(self.path), timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)
        stored = self.conn.execute("SELECT value FROM meta WHERE key='config_hash'").fetchone()
        if stored is None:
            with self.conn:
                self.conn.execute("INSERT INTO meta VALUES ('config_hash', ?)", (config_hash,))
        elif stored[0] != config_hash:
            raise ValueError(
                f"{self.path} holds results of another configuration (hash {stored[0]}, this run {config_hash}); "
                "use another --out folder or delete the store to start over"
            )

    def done(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT unit FROM units")}

    def put(self, unit: str, rows: Iterable[Mapping]) -> None:
        """Store a finished unit atomically (one transaction)."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO units VALUES (?, ?, ?)", (unit, self.config_hash, json.dumps(list(rows)))
            )

    def frame(self) -> pd.DataFrame:
        """All stored rows as a DataFrame, in unit-key order (independent of completion order)."""
        rows: list[dict] = []
        for (payload,) in self.conn.execute("SELECT rows FROM units ORDER BY unit"):
            rows.extend(json.loads(payload))
        return pd.DataFrame(rows)

    def merge_from(self, other: str | Path) -> int:
        """Copy every unit of another store of the same configuration; returns how many were new."""
        src = RowStore(other, self.config_hash)
        before = len(self.done())
        with self.conn:
            for unit, chash, payload in src.conn.execute("SELECT unit, config_hash, rows FROM units"):
                self.conn.execute("INSERT OR IGNORE INTO units VALUES (?, ?, ?)", (unit, chash, payload))
        src.close()
        return len(self.done()) - before

    def close(self) -> None:
        self.conn.close()
