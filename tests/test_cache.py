"""The on-disk search cache: hits, expiry, atomicity under threads, and surviving a broken file."""

from __future__ import annotations

import logging
import sqlite3
import threading

import pytest

from tools import cache as cache_module
from tools.cache import DiskCache


@pytest.fixture
def cache(tmp_path):
    return DiskCache(tmp_path / "whazzat" / "cache.sqlite3", ttl_seconds=60)


def test_round_trip_and_miss(cache):
    assert cache.get("k") is None
    cache.set("k", {"listings": [1, 2], "s": "ü"})
    assert cache.get("k") == {"listings": [1, 2], "s": "ü"}
    assert DiskCache(cache.path, ttl_seconds=60).get("k") == {"listings": [1, 2], "s": "ü"}  # persistent


def test_entries_expire(cache, monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(cache_module.time, "time", lambda: now[0])
    cache.set("k", "v")
    cache.set("short", "v", ttl_seconds=5)
    now[0] += 10
    assert cache.get("short") is None
    assert cache.get("k") == "v"
    now[0] += 60
    assert cache.get("k") is None


def test_zero_ttl_stores_nothing(tmp_path):
    cache = DiskCache(tmp_path / "c.sqlite3", ttl_seconds=0)
    cache.set("k", "v")
    assert cache.get("k") is None


def test_overwrite_replaces(cache):
    cache.set("k", 1)
    cache.set("k", 2)
    assert cache.get("k") == 2


def test_corrupt_file_is_moved_aside_and_the_cache_keeps_working(cache, caplog):
    cache.set("k", "v")
    cache.path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING):
        assert cache.get("k") is None
        cache.set("k", "fresh")
    assert cache.get("k") == "fresh"
    assert (cache.path.parent / (cache.path.name + ".corrupt")).exists()
    assert "unreadable" in caplog.text


def test_unreadable_value_is_a_miss(cache):
    cache.set("k", "v")
    with sqlite3.connect(cache.path) as connection:
        connection.execute("UPDATE entries SET value = '{not json' WHERE key = 'k'")
    assert cache.get("k") is None


def test_unusable_directory_disables_the_cache_without_raising(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cache = DiskCache(blocker / "sub" / "cache.sqlite3", ttl_seconds=60)
    with caplog.at_level(logging.WARNING):
        cache.set("k", "v")
        assert cache.get("k") is None
    assert "disabled" in caplog.text


def test_concurrent_writers_never_corrupt(cache):
    def write(worker: int) -> None:
        for i in range(10):
            cache.set(f"k{i}", {"worker": worker, "i": i})

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(10):
        value = cache.get(f"k{i}")
        assert value["i"] == i and value["worker"] in range(4)
