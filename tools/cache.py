"""A small persistent cache: JSON values by string key, with expiry, in one SQLite file.

Why SQLite: every write is an atomic transaction (a crash mid-write leaves the old value, never half a
file), several threads and processes can share it, and expiry is one indexed column. A cache is an
optimisation, so it never breaks a search: a corrupt file is moved aside and recreated, and if the
directory cannot be written at all the cache turns itself off with one logged warning.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL)"
)


class DiskCache:
    """Key -> JSON value with a time to live. ``get`` returns None for a miss, an expired or unreadable entry."""

    def __init__(self, path: Path, ttl_seconds: float) -> None:
        self.path = Path(path)
        self.ttl_seconds = ttl_seconds
        self._disabled = False
        self._read_only = False
        self._lock = threading.Lock()  # serialises recovery; SQLite itself handles concurrent access

    def get(self, key: str) -> Any | None:
        row = self._execute("SELECT value, expires FROM entries WHERE key = ?", (key,))
        if not row or row[1] <= time.time():
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def set(self, key: str, value: Any, ttl_seconds: float | None = None) -> None:
        """Store ``value`` (JSON-serialisable) for ``ttl_seconds`` (default: the cache's TTL)."""
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        if ttl <= 0:
            return
        now = time.time()
        self._execute(
            "INSERT OR REPLACE INTO entries (key, value, expires) VALUES (?, ?, ?)",
            (key, json.dumps(value, separators=(",", ":")), now + ttl),
            purge_before=now,
        )

    def _execute(self, sql: str, params: tuple, purge_before: float | None = None) -> tuple | None:
        """Run one statement in its own transaction; recover once from a corrupt file."""
        if self._disabled:
            return None
        for attempt in (1, 2):
            try:
                return self._run(sql, params, purge_before)
            except sqlite3.DatabaseError as error:  # corrupt file, "file is not a database", locked, ...
                if attempt == 2 or not self._recover(error):
                    return None
            except OSError as error:
                self._disable(error)
                return None
        return None

    def _run(self, sql: str, params: tuple, purge_before: float | None) -> tuple | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=5)
        try:
            with connection:  # one transaction: committed on success, rolled back on error
                connection.execute(_SCHEMA)
                row = connection.execute(sql, params).fetchone()
                if purge_before is not None:
                    connection.execute("DELETE FROM entries WHERE expires <= ?", (purge_before,))
            return row
        finally:
            connection.close()

    def _recover(self, error: sqlite3.DatabaseError) -> bool:
        """Move a corrupt cache file aside so the next try starts a fresh one. False if that is not it."""
        if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            return False  # busy, not broken: skip caching this time
        if isinstance(error, sqlite3.OperationalError) and "readonly" in str(error):
            # A read-only file is not broken: keep reading it, skip the writes, say so once.
            if not self._read_only:
                self._read_only = True
                logger.warning("Search cache %s is read-only; new results will not be saved.", self.path)
            return False
        with self._lock:
            if not self.path.exists():
                return True
            aside = self.path.with_name(self.path.name + ".corrupt")
            try:
                self.path.replace(aside)
            except OSError as move_error:
                self._disable(move_error)
                return False
            logger.warning(
                "Search cache %s was unreadable (%s); moved it to %s.", self.path, error, aside.name
            )
            return True

    def _disable(self, error: Exception) -> None:
        if not self._disabled:
            self._disabled = True
            logger.warning("Search cache disabled: cannot use %s (%s).", self.path, error)
