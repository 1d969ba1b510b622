"""The concurrency shapes Whazzat uses: values built once per key, a bounded thread fan-out, and one
worker that runs batch calls one at a time, merging the calls that wait together."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")
R = TypeVar("R")


class Memo(Generic[K, V]):
    """Values built once per key and shared by every thread of the process (loaded models, chains,
    memories). The lock is held while a value is built, so two threads never load the same model twice."""

    def __init__(self) -> None:
        self._values: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], V]) -> V:
        with self._lock:
            if key not in self._values:
                self._values[key] = build()
            return self._values[key]

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)


def map_in_threads(function: Callable[[T], R], items: Sequence[T], max_workers: int) -> list[R]:
    """``[function(item) for item in items]``, in order, on up to ``max_workers`` threads (I/O-bound work:
    HTTP calls). One item runs on the calling thread; an exception propagates as from the plain loop."""
    if len(items) <= 1 or max_workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items))) as pool:
        return list(pool.map(function, items))


@dataclass
class _Call:
    key: Hashable
    items: list[Any]
    function: Callable[[list[Any]], list[Any]]
    result: Future[list[Any]] = field(default_factory=Future)


class BatchingWorker:
    """One thread that runs batch functions one call at a time, and merges the calls that wait together.

    ``run(key, items, function)`` blocks until ``function(items)`` has run on the worker. Calls with the same
    ``key`` that are waiting when the worker picks up work run as ONE call of the first one's ``function`` on
    all their items (oldest first, up to ``max_items``), so callers must give the same key only to
    functions that do the same thing item by item. Used for the model: it is not meant to be called from
    several threads at once, and one batched generate of many chats' prompts costs little more than one.
    """

    def __init__(self, name: str, max_items: int = 64) -> None:
        self.name = name
        self.max_items = max_items
        self._pending: list[_Call] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        """How many calls wait for the worker (not counting the one it runs)."""
        with self._ready:
            return len(self._pending)

    def run(self, key: Hashable, items: Sequence[T], function: Callable[[list[T]], list[R]]) -> list[R]:
        """``function(list(items))``, run on the worker, possibly merged with other waiting calls."""
        if not items:
            return []
        call = _Call(key, list(items), function)
        with self._ready:
            self._pending.append(call)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return call.result.result()

    def _take(self) -> list[_Call]:
        """The oldest waiting call and the later ones with its key, while they fit in ``max_items``."""
        with self._ready:
            while not self._pending:
                self._ready.wait()
            taken, size = [], 0
            for call in list(self._pending):
                if call.key == self._pending[0].key and (not taken or size + len(call.items) <= self.max_items):
                    taken.append(call)
                    size += len(call.items)
            for call in taken:
                self._pending.remove(call)
            return taken

    def _work(self) -> None:
        while True:
            calls = self._take()
            try:
                results = calls[0].function([item for call in calls for item in call.items])
            except BaseException as error:  # noqa: BLE001 - each caller re-raises it on its own thread
                for call in calls:
                    call.result.set_exception(error)
                continue
            start = 0
            for call in calls:
                call.result.set_result(results[start:start + len(call.items)])
                start += len(call.items)
