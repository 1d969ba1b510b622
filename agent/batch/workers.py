"""Answer a batch's chunks in several model processes: the engine of ``whazzat batch --workers N``.

One process runs the model on one core (torch with one thread, ``Settings.torch_threads``), so a machine
with N idle cores answers up to N times as many needs with N processes, each with its own copy of the
model. The parent keeps what must be one:

* the search: one :class:`~agent.batch.search.SharedSearch`, so a product type is searched once for the
  whole batch whichever worker proposes it, the summary's counts are whole, and the API key and the
  search cache stay in one process. Workers ask it over their pipe (:class:`RemoteSearch`); the parent
  answers in threads, so a slow remote search never holds up another worker's results;
* the output, written in input order (:func:`agent.batch.runner.run_batch`), and Ctrl-C: workers
  ignore it (a terminal sends it to every process of the group) and the parent tells them to stop.

Each worker is spawned, not forked (torch's threads do not survive a fork), sets one torch thread, builds
the chain once with the factory, then answers one chunk at a time with one ``chain.batch`` call. It exits
on ``stop``, or when its pipe closes because the parent is gone.

A worker that dies (the out-of-memory killer, kill -9) comes back from :meth:`WorkerPool.poll` as
:class:`Lost` with the chunk it held; :meth:`WorkerPool.replace` starts a fresh one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from typing_extensions import Self

from agent.batch.outputs import describe_failure
from agent.core.config import Settings
from agent.core.errors import WhazzatError
from agent.core.schemas import Recommendation
from tools.base import SearchBackend, SearchOutcome, SearchQuery

log = logging.getLogger(__name__)

#: Builds the chain inside a worker from the settings and the search backend to use. A module-level
#: function: a spawned worker imports it by name.
ChainFactory = Callable[[Settings, SearchBackend], Any]

#: Seconds a worker gets to leave after ``stop`` (it has no chunk then) before it is terminated.
STOP_GRACE_SECONDS = 10.0
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class WorkerStartError(WhazzatError):
    """The first worker could not build the chain: the message is the worker's own error."""


class RemoteSearchError(WhazzatError):
    """The parent could not answer a worker's search."""


@dataclass(frozen=True)
class Failure:
    """A need the worker's chain could not answer, and why (exceptions do not always pickle)."""

    reason: str


@dataclass(frozen=True)
class Answered:
    """A chunk came back: one Recommendation or Failure per need, in the chunk's order."""

    chunk: int
    outcomes: list[Recommendation | Failure]


@dataclass(frozen=True)
class Lost:
    """A worker died; ``chunk`` is the one it was answering (None when it had none)."""

    chunk: int | None
    reason: str


@dataclass(frozen=True)
class Failed:
    """A worker could not build its chain (a later one than the first); the pool goes on without it."""

    reason: str


Event = Answered | Lost | Failed


def describe_exit(exitcode: int | None) -> str:
    """Why a worker process ended, in words."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return f"killed by {name}: the out-of-memory killer, or kill -9"
        return f"killed by {name}"
    if exitcode:
        return f"exited with code {exitcode}"
    return "exited unexpectedly"


# --- the worker process --------------------------------------------------------------------------------
class RemoteSearch(SearchBackend):
    """The search backend inside a worker: every search is asked of the parent's shared search."""

    name = "remote"

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()  # one question and its answer at a time on the pipe

    def _ask(self, kind: str, queries: Sequence[SearchQuery]) -> SearchOutcome | None:
        with self._lock:
            self._connection.send(("search", kind, list(queries)))
            reply, answer = self._connection.recv()
        if reply != "searched":
            raise RemoteSearchError(str(answer))
        return answer

    def search(self, query: SearchQuery) -> SearchOutcome:
        return self.search_many([query])

    def search_many(self, queries: Sequence[SearchQuery]) -> SearchOutcome:
        return self._ask("search_many", queries) or SearchOutcome()

    def prefetch(self, queries: Sequence[SearchQuery]) -> None:
        self._ask("prefetch", queries)


def worker_main(connection: Connection, factory: ChainFactory, settings: Settings) -> None:
    """A worker's life: build the chain once, then answer chunks until told to stop or orphaned."""
    # Ctrl-C is the parent's to handle; the parent blocked it while starting us, so none is pending.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # stdout may carry the batch's results (whazzat batch - > out.jsonl): nothing of ours goes there.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    # One thread per process: N workers on N cores, not N x N threads fighting over them. The variables
    # must be set before torch (and its OpenMP/MKL) loads; the factory's settings say 1 as well.
    for name in _THREAD_VARIABLES:
        os.environ[name] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if "torch" in sys.modules:  # a factory module that imported torch already
        sys.modules["torch"].set_num_threads(1)
    try:
        chain = factory(settings.model_copy(update={"torch_threads": 1}), RemoteSearch(connection))
    except BaseException as error:  # noqa: BLE001 - whatever stops the load, the parent reports it
        _send(connection, ("failed", describe_failure(error)))
        return
    if not _send(connection, ("ready", os.getpid())):
        return
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if message[0] != "chunk":
            return
        _, chunk, needs = message
        if not _send(connection, ("done", chunk, answer_chunk(chain, needs))):
            return


def answer_chunk(chain: Any, needs: list[str]) -> list[Recommendation | Failure]:
    """One ``chain.batch`` call; failures become :class:`Failure` (an exception may not pickle)."""
    try:
        results = chain.batch(needs, return_exceptions=True)
    except Exception as error:  # noqa: BLE001 - the whole chunk failed: each need says why
        return [Failure(describe_failure(error))] * len(needs)
    outcomes: list[Recommendation | Failure] = []
    for result in results:
        if isinstance(result, Recommendation):
            outcomes.append(result)
        elif isinstance(result, BaseException):
            outcomes.append(Failure(describe_failure(result)))
        else:
            outcomes.append(Failure(f"the chain returned {type(result).__name__}, not a Recommendation"))
    return outcomes


def _send(connection: Connection, message: tuple[Any, ...]) -> bool:
    try:
        connection.send(message)
    except OSError:  # the parent is gone
        return False
    return True


# --- the parent's side ---------------------------------------------------------------------------------
@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    connection: Connection
    ready: bool = False
    failed: bool = False
    chunk: int | None = None


class WorkerPool:
    """``workers`` model processes answering chunks of needs; searches go to ``search`` in this process.

    :meth:`start`, then :meth:`submit` chunks to idle workers and :meth:`poll` for what came back;
    :meth:`close` (or leaving a ``with`` block) stops every worker.
    """

    def __init__(self, factory: ChainFactory, settings: Settings, *, workers: int, search: SearchBackend) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.factory = factory
        self.settings = settings
        self.size = workers
        self.search = search
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._started = 0
        self._searches = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch-search")
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(now=exc[0] is not None)

    # --- state -----------------------------------------------------------------------------------------
    @property
    def alive(self) -> int:
        """Workers running or loading (not those that failed to load)."""
        return sum(not worker.failed for worker in self._workers)

    @property
    def in_flight(self) -> int:
        return sum(worker.chunk is not None for worker in self._workers)

    @property
    def idle(self) -> bool:
        return any(self._is_idle(worker) for worker in self._workers)

    @staticmethod
    def _is_idle(worker: _Worker) -> bool:
        return worker.ready and not worker.failed and worker.chunk is None

    # --- life ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the first worker and wait until its chain is built, then start the others.

        The first alone, because a first run converts the embedded model and embeds the need memory into
        caches under WHAZZAT_HOME: one process does that and the others load the result. The others join
        as they finish loading; the first answers meanwhile. Raises :class:`WorkerStartError` with the
        worker's own message when the first cannot build its chain (a model that does not load).
        """
        try:
            first = self._spawn()
            while not first.ready:
                for event in self.poll(timeout=1.0):
                    if isinstance(event, Failed):
                        raise WorkerStartError(event.reason)
                    if isinstance(event, Lost):
                        raise WorkerStartError(f"the worker loading the model died ({event.reason})")
            for _ in range(self.size - 1):
                self._spawn()
        except BaseException:  # a model that does not load, Ctrl-C while loading ...
            self.close(now=True)
            raise

    def replace(self) -> None:
        """Start a fresh worker in place of one that died, keeping the pool at its size."""
        if not self._closed and self.alive < self.size:
            self._spawn()

    def _spawn(self) -> _Worker:
        self._started += 1
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=worker_main,
            args=(child_end, self.factory, self.settings),
            name=f"whazzat-batch-worker-{self._started}",
            daemon=True,
        )
        # Blocked, a Ctrl-C cannot interrupt the child before it ignores it (the mask is inherited), and
        # stays pending here instead of being lost.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child_end.close()  # only the child holds its end now: its death reads as EOF here
        worker = _Worker(process, parent_end)
        self._workers.append(worker)
        return worker

    def submit(self, chunk: int, needs: list[str]) -> None:
        """Give ``needs`` (chunk number ``chunk``) to an idle worker; call only when :attr:`idle`."""
        worker = next(worker for worker in self._workers if self._is_idle(worker))
        worker.chunk = chunk  # before sending: a worker that dies now still reports this chunk lost
        try:
            worker.connection.send(("chunk", chunk, needs))
        except OSError:
            pass  # it died: poll() reads the EOF and reports the chunk lost

    def poll(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds for something to happen; what came back, and who died."""
        handles: list[Any] = [worker.connection for worker in self._workers]
        handles += [worker.process.sentinel for worker in self._workers]
        if not handles:
            time.sleep(timeout)
            return []
        ready = set(wait(handles, timeout))
        events: list[Event] = []
        for worker in list(self._workers):
            if worker.connection in ready or worker.process.sentinel in ready:
                events.extend(self._drain(worker))
        return events

    def _drain(self, worker: _Worker) -> list[Event]:
        """Read everything the worker sent (a dead worker's last answer included), then bury it if dead."""
        events: list[Event] = []
        try:
            while worker.connection.poll():
                event = self._handle(worker, worker.connection.recv())
                if event is not None:
                    events.append(event)
        except (EOFError, OSError):
            pass
        else:
            if worker.process.is_alive():
                return events
        lost = self._bury(worker)
        if lost is not None:
            events.append(lost)
        return events

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> Event | None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "failed":
            worker.failed = True
            return Failed(str(message[1]))
        elif kind == "search":
            self._searches.submit(self._serve_search, worker, message[1], message[2])
        elif kind == "done":
            worker.chunk = None
            return Answered(message[1], message[2])
        return None

    def _serve_search(self, worker: _Worker, kind: str, queries: list[SearchQuery]) -> None:
        """Answer one worker's search (in a thread): the worker waits for it, nobody else does."""
        try:
            if kind == "prefetch":
                prefetch = getattr(self.search, "prefetch", None)
                answer: SearchOutcome | None = None
                if prefetch is not None:
                    prefetch(queries)
            else:
                answer = self.search.search_many(queries)
            reply: tuple[str, Any] = ("searched", answer)
        except Exception as error:  # the worker records the needs as failed
            log.debug("search for a worker failed", exc_info=error)
            reply = ("search-failed", describe_failure(error))
        try:
            worker.connection.send(reply)
        except (OSError, ValueError):
            pass  # the worker died meanwhile (or the pool closed)

    def _bury(self, worker: _Worker) -> Lost | None:
        """Forget a worker whose process ended: the chunk it held is lost, unless it only failed to load."""
        self._workers.remove(worker)
        worker.process.join(timeout=5)
        reason = describe_exit(worker.process.exitcode)
        worker.connection.close()
        if worker.failed or self._closed:
            return None
        return Lost(worker.chunk, reason)

    def close(self, *, now: bool = False) -> None:
        """Stop every worker: idle ones are asked to leave, the rest (or all, with ``now``) terminated."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            if now or not self._is_idle(worker):
                worker.process.terminate()
            else:
                _send(worker.connection, ("stop",))
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in self._workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            worker.connection.close()
        self._workers.clear()
        self._searches.shutdown(wait=not now, cancel_futures=True)
