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
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

from pydantic import BaseModel, Field
from typing_extensions import Self

from agent.batch.inputs import InputRow
from agent.batch.outputs import Done, ErrorRecord, Record, RecordWriter
from agent.batch.progress import BatchProgress, NoProgress
from agent.batch.search import SearchStats, SharedSearch
from agent.core.errors import WhazzatError
from agent.core.schemas import Recommendation

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 16
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
    wall_seconds: float = Field(default=0.0, description="Seconds answering (after setup).")
    setup_seconds: float = Field(default=0.0, description="Seconds loading the model, set by the caller.")
    search: SearchStats = Field(default_factory=SearchStats)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_SOME_FAILED if self.errors else EXIT_OK


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


def describe_failure(error: BaseException) -> str:
    """One line for an error record: our own errors already say what to do."""
    if isinstance(error, WhazzatError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


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
) -> BatchSummary:
    """Answer every row not in ``done`` with ``chain`` (anything with LCEL's ``batch``), writing records
    through ``writer``. Never raises for a bad row or a failed need; returns the summary."""
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
            for chunk in chunks(pending, chunk_size):
                if stop.requested:
                    summary.interrupted = True
                    break
                _run_chunk(chain, chunk, first_line, writer, summary, progress, stop)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
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
    writer.write(records)
    failed = sum(isinstance(record, ErrorRecord) for record in records)
    summary.answered += len(records) - failed
    summary.errors += failed
    summary.remaining -= len(records)
    progress.advance(len(records), failed)


def _record(need: str, line: int, result: object) -> Record:
    if isinstance(result, Recommendation):
        return result
    if isinstance(result, BaseException) and not isinstance(result, Exception):
        raise KeyboardInterrupt  # an interrupt LCEL turned into a result
    if isinstance(result, BaseException):
        log.debug("need %r failed", need, exc_info=result)
        return ErrorRecord(need=need, error=describe_failure(result), line=line)
    return ErrorRecord(
        need=need, error=f"the chain returned {type(result).__name__}, not a Recommendation", line=line
    )
