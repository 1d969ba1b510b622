"""Run many needs through one chain: the engine behind ``whazzat batch``.

    from agent.batch.runner import run_batch
    summary = run_batch(rows, chain, writer, chunk_size=16)

The work, in order:

1. rows that failed validation become error records at once (the batch goes on);
2. identical needs are answered once; needs an earlier run already answered (``--resume``) are skipped;
3. the remaining needs go through ``chain.batch`` a chunk at a time, so the model generates for every
   need of a chunk in one batched call, and each chunk's records are written (whole lines, flushed)
   as soon as it completes;
4. Ctrl-C (or SIGTERM) stops after the chunk in flight, keeping everything written; a second one stops
   at once, losing only that chunk.

With a :class:`~agent.batch.workers.WorkerPool` (``--workers N``) the chunks go to N model processes side
by side; records are still written in input order (a chunk that comes back early waits for those before
it), a chunk whose worker died is answered again once, and Ctrl-C waits for the chunks in flight.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from typing_extensions import Self

from agent.batch.inputs import InputRow
from agent.batch.outputs import Done, ErrorRecord, Record, RecordWriter, describe_failure
from agent.batch.progress import BatchProgress, NoProgress
from agent.batch.search import SearchStats, SharedSearch
from agent.batch.workers import Answered, Failed, Failure, Lost
from agent.core.schemas import Recommendation

if TYPE_CHECKING:
    from agent.batch.workers import WorkerPool

log = logging.getLogger(__name__)

__all__ = ["BatchSummary", "StopSignal", "chunks", "describe_failure", "run_batch"]

DEFAULT_CHUNK_SIZE = 16
#: Tries of a chunk whose worker died: the first, and one more on the next free worker.
CHUNK_TRIES = 2
#: Worker deaths in a row (no chunk answered in between) after which a run stops instead of going on.
MAX_DEATHS_IN_A_ROW = 3
EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_ARGUMENTS, EXIT_INTERRUPTED = 0, 1, 2, 130


class BatchSummary(BaseModel):
    """What a batch run did; printed at the end and turned into the exit code."""

    rows: int = Field(description="Rows read from the input.")
    answered: int = Field(default=0, description="Needs answered by this run.")
    errors: int = Field(default=0, description="Bad rows in the input plus needs that failed.")
    skipped: int = Field(default=0, description="Needs an earlier run already answered (--resume).")
    duplicates: int = Field(default=0, description="Rows repeating a need of an earlier row.")
    remaining: int = Field(default=0, description="Needs left unanswered because the run was stopped.")
    interrupted: bool = False
    stopped: str | None = Field(default=None, description="Why the run stopped early, other than Ctrl-C.")
    workers: int = Field(default=1, description="Model processes (--workers).")
    worker_losses: list[str] = Field(
        default_factory=list, description="Why each worker lost during the run ended (died, or did not load)."
    )
    retried: int = Field(default=0, description="Chunks answered again after their worker died.")
    wall_seconds: float = Field(default=0.0, description="Seconds answering (after setup).")
    setup_seconds: float = Field(default=0.0, description="Seconds loading the model, set by the caller.")
    search: SearchStats = Field(default_factory=SearchStats)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_SOME_FAILED if self.errors or self.stopped else EXIT_OK


class StopSignal:
    """Turns the first Ctrl-C / SIGTERM into a request to stop after the current chunk; the second one
    interrupts at once. Signal handlers can only be set from the main thread: elsewhere this does nothing
    and Ctrl-C behaves as usual."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_request: Any = None) -> None:
        self.requested = False
        self.immediate = False
        self._on_request = on_request
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.requested:
            self.immediate = True
            raise KeyboardInterrupt
        self.requested = True
        if self._on_request is not None:
            self._on_request()


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def run_batch(
    rows: Sequence[InputRow],
    chain: Any,
    writer: RecordWriter,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    done: Done | None = None,
    progress: BatchProgress | None = None,
    search: SharedSearch | None = None,
    stop: StopSignal | None = None,
    pool: WorkerPool | None = None,
) -> BatchSummary:
    """Answer every row not in ``done`` with ``chain`` (anything with LCEL's ``batch``), or with the
    started worker ``pool`` in its place (``chain`` is then unused), writing records through ``writer``.
    Never raises for a bad row, a failed need or a dead worker; returns the summary."""
    started = time.perf_counter()
    done = done or Done()
    progress = progress or NoProgress()
    summary = BatchSummary(rows=len(rows))

    # Bad rows: reported once, never retried (the same input gives the same error).
    bad = [row for row in rows if row.need is None]
    summary.errors = len(bad)
    new_bad = [
        ErrorRecord(need=row.raw, error=row.error or "", line=row.line)
        for row in bad
        if row.line not in done.bad_lines
    ]

    # Good rows: each distinct need once, remembering its first line for error records.
    first_line: dict[str, int] = {}
    for row in rows:
        if row.need is not None:
            first_line.setdefault(row.need, row.line)
    summary.duplicates = len(rows) - len(bad) - len(first_line)
    pending = [need for need in first_line if need not in done.needs]
    summary.skipped = len(first_line) - len(pending)
    summary.remaining = len(pending)

    stop = stop or StopSignal()
    with stop:
        try:
            writer.write(new_bad)
            progress.start(len(pending))
            if pool is not None:
                summary.workers = pool.size
                _run_in_pool(pool, pending, chunk_size, first_line, writer, summary, progress, stop)
            else:
                for chunk in chunks(pending, chunk_size):
                    if stop.requested:
                        summary.interrupted = True
                        break
                    _run_chunk(chain, chunk, first_line, writer, summary, progress, stop)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            if pool is not None:
                pool.close(now=summary.interrupted)  # a second Ctrl-C: stop the workers at once
            progress.close()
            writer.close()
    if search is not None:
        summary.search = search.stats.model_copy()
    summary.wall_seconds = round(time.perf_counter() - started, 3)
    return summary


def _run_chunk(
    chain: Any,
    chunk: list[str],
    first_line: dict[str, int],
    writer: RecordWriter,
    summary: BatchSummary,
    progress: BatchProgress,
    stop: StopSignal,
) -> None:
    """Answer one chunk with one ``chain.batch`` call and write its records."""
    results = chain.batch(chunk, return_exceptions=True)
    if stop.immediate:
        # LCEL catches BaseException inside a stage and passes it on as a result: never record that.
        raise KeyboardInterrupt
    records = [_record(need, first_line[need], result) for need, result in zip(chunk, results, strict=True)]
    _write(writer, records, summary)
    progress.advance(len(records), _failed(records))


def _write(writer: RecordWriter, records: list[Record], summary: BatchSummary) -> None:
    writer.write(records)
    failed = _failed(records)
    summary.answered += len(records) - failed
    summary.errors += failed
    summary.remaining -= len(records)


def _failed(records: list[Record]) -> int:
    return sum(isinstance(record, ErrorRecord) for record in records)


def _run_in_pool(
    pool: WorkerPool,
    pending: list[str],
    chunk_size: int,
    first_line: dict[str, int],
    writer: RecordWriter,
    summary: BatchSummary,
    progress: BatchProgress,
    stop: StopSignal,
) -> None:
    """Answer ``pending`` with the pool's workers, writing each chunk once every chunk before it is
    written. A chunk whose worker died is tried once more, then recorded as failed."""
    # Smaller chunks when the needs are few, so that every worker gets some.
    size = min(chunk_size, max(1, math.ceil(len(pending) / pool.size)))
    work = list(chunks(pending, size))
    queue = deque(range(len(work)))  # chunks to hand out; a retried one goes first
    tries = [0] * len(work)
    held: dict[int, list[Record]] = {}  # answered, waiting for the chunks before them
    written = deaths_in_a_row = 0
    while True:
        if stop.requested:
            summary.interrupted = True
        going_on = not summary.interrupted and summary.stopped is None
        while going_on and queue and pool.idle:
            chunk = queue.popleft()
            tries[chunk] += 1
            pool.submit(chunk, work[chunk])
        if not pool.in_flight:
            if not queue or not going_on:
                return
            if not pool.alive:
                last = summary.worker_losses[-1] if summary.worker_losses else "they could not load the model"
                summary.stopped = f"no worker is left ({last})"
                return
        for event in pool.poll(timeout=0.5):
            if isinstance(event, Answered):
                deaths_in_a_row = 0
                needs = work[event.chunk]
                held[event.chunk] = [
                    _record(need, first_line[need], outcome)
                    for need, outcome in zip(needs, event.outcomes, strict=True)
                ]
                progress.advance(len(needs), _failed(held[event.chunk]))
            elif isinstance(event, Lost):
                summary.worker_losses.append(event.reason)
                deaths_in_a_row += 1
                log.info("a batch worker died (%s)", event.reason)
                if event.chunk is not None and (tries[event.chunk] < CHUNK_TRIES and going_on):
                    queue.appendleft(event.chunk)
                    summary.retried += 1
                elif event.chunk is not None and going_on:
                    lost = work[event.chunk]
                    held[event.chunk] = [_lost_record(need, first_line[need], event.reason) for need in lost]
                    progress.advance(len(lost), len(lost))
                # else: the run is stopping, and --resume answers the chunk
                if deaths_in_a_row >= MAX_DEATHS_IN_A_ROW:
                    summary.stopped = f"workers keep dying ({event.reason})"
                elif going_on and queue:
                    pool.replace()
            elif isinstance(event, Failed):
                log.info("a batch worker could not load the chain: %s", event.reason)
                summary.worker_losses.append(f"could not load: {event.reason}")
        while written in held:
            _write(writer, held.pop(written), summary)
            written += 1


def _lost_record(need: str, line: int, reason: str) -> ErrorRecord:
    return ErrorRecord(
        need=need,
        error=f"the worker answering this need died twice ({reason}); run again with --resume, "
        "with fewer --workers or a smaller --chunk-size if memory is short",
        line=line,
    )


def _record(need: str, line: int, result: object) -> Record:
    if isinstance(result, Recommendation):
        return result
    if isinstance(result, Failure):  # from a worker process
        return ErrorRecord(need=need, error=result.reason, line=line)
    if isinstance(result, BaseException) and not isinstance(result, Exception):
        raise KeyboardInterrupt  # an interrupt LCEL turned into a result
    if isinstance(result, BaseException):
        log.debug("need %r failed", need, exc_info=result)
        return ErrorRecord(need=need, error=describe_failure(result), line=line)
    return ErrorRecord(
        need=need, error=f"the chain returned {type(result).__name__}, not a Recommendation", line=line
    )
