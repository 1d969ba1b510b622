"""Write a batch's results, one whole record per line, and find what an earlier run already did.

* JSONL: one line per need, the :class:`~agent.core.schemas.Recommendation` as JSON, or an
  :class:`ErrorRecord` (``{"need": ..., "error": ..., "line": ...}``) for a row that failed.
* CSV: flat rows (one per listing, from ``Recommendation.to_records()``), several per need, with
  ``item``/``items`` columns so a reader (and ``--resume``) can tell a need's rows are all there.

Crash safety: the records of a chunk are written in one ``write`` call, flushed and fsynced; line breaks
inside CSV cells are replaced by spaces, so a record is always whole lines. A run killed mid-write leaves
at most a half-written tail, which :func:`open_output` cuts off before ``--resume`` appends.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.core.errors import WhazzatError
from agent.core.schemas import Recommendation

OutputFormat = Literal["jsonl", "csv"]
_SUFFIXES: dict[str, OutputFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}

#: CSV columns: the need and its error, then one listing (or product type) per row, then need-wide text.
CSV_COLUMNS: tuple[str, ...] = (
    "need",
    "error",
    "line",
    "item",
    "items",
    "product",
    "votes",
    "title",
    "url",
    "price",
    "rating",
    "reviews",
    "score",
    "image",
    "asin",
    "sponsored",
    "prime",
    "paraphrases",
    "warnings",
)
_LIST_SEPARATOR = " | "  # joins paraphrases and warnings in a CSV cell


class BatchOutputError(WhazzatError):
    """The output file cannot be used: the message says what to fix."""


class ErrorRecord(BaseModel):
    """The record of a row that produced no recommendation."""

    model_config = ConfigDict(extra="forbid")

    need: str = Field(description="The need as given (undecodable bytes replaced), or '' when missing.")
    error: str = Field(description="Why the row failed, in words a user can act on.")
    line: int | None = Field(default=None, description="Line of the row in the input.")


Record = Recommendation | ErrorRecord


def describe_failure(error: BaseException) -> str:
    """One line for an error record: our own errors already say what to do."""
    if isinstance(error, WhazzatError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


@dataclass
class Done:
    """What an earlier run already wrote: the needs it answered, and the input lines it reported as bad
    (``--resume`` assumes the same input)."""

    needs: set[str] = field(default_factory=set)
    bad_lines: set[int] = field(default_factory=set)
    unreadable: int = 0  # lines that were not records (hand edits, another tool): ignored

    def add(self, need: str, error: str | None, line: int | None) -> None:
        if error:
            if line is not None:
                self.bad_lines.add(line)
        else:
            self.needs.add(need)


def output_format(path: Path) -> OutputFormat:
    """The output format named by the file suffix."""
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise BatchOutputError(f"--out must end in .jsonl or .csv (got {path.name!r})") from None


class RecordWriter(ABC):
    """Appends records to the output; each :meth:`write` lands whole and flushed.

    A file is opened on the first write, so a run that fails before answering anything (a model that
    does not load) leaves no empty file behind.
    """

    def __init__(self, open_stream: Callable[[], IO[bytes]], *, sync: bool, name: str = "the output") -> None:
        self._open_stream = open_stream
        self.name = name
        self._stream: IO[bytes] | None = None
        self._sync = sync

    def write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        try:
            stream = self._opened()
            stream.write(self.encode(records))  # one write per chunk: whole lines or nothing
            stream.flush()
            if self._sync:
                os.fsync(stream.fileno())  # survives a power cut, not only a killed process
        except OSError as error:
            raise BatchOutputError(
                f"cannot write {self.name}: {error.strerror or error}; fix that and rerun with --resume"
            ) from error

    def _opened(self) -> IO[bytes]:
        if self._stream is None:
            self._stream = self._open_stream()
            self.begin(self._stream)
        return self._stream

    def begin(self, stream: IO[bytes]) -> None:
        """Write what a new output starts with (a CSV header)."""

    @abstractmethod
    def encode(self, records: Sequence[Record]) -> bytes:
        """The bytes of ``records``, whole lines only."""

    def close(self) -> None:
        if self._stream is None:
            return
        try:
            if self._sync:  # a file we opened; stdout is not ours to close
                self._stream.close()
            else:
                self._stream.flush()
        except OSError as error:  # a write that failed (disk full) leaves bytes that cannot be flushed
            raise BatchOutputError(
                f"cannot write {self.name}: {error.strerror or error}; fix that and rerun with --resume"
            ) from error


class JsonlWriter(RecordWriter):
    def encode(self, records: Sequence[Record]) -> bytes:
        return "".join(record.model_dump_json() + "\n" for record in records).encode("utf-8")


class CsvWriter(RecordWriter):
    def begin(self, stream: IO[bytes]) -> None:
        if stream.tell() == 0:
            stream.write(self._lines([dict(zip(CSV_COLUMNS, CSV_COLUMNS, strict=True))]))

    def encode(self, records: Sequence[Record]) -> bytes:
        return self._lines([row for record in records for row in csv_rows(record)])

    @staticmethod
    def _lines(rows: list[dict[str, object]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writerows({key: _one_line(value) for key, value in row.items()} for row in rows)
        return buffer.getvalue().encode("utf-8")


def csv_rows(record: Record) -> list[dict[str, object]]:
    """The CSV rows of one record: one per listing (or per product type), at least one."""
    if isinstance(record, ErrorRecord):
        return [{"need": record.need, "error": record.error, "line": record.line, "item": 1, "items": 1}]
    shared = {
        "paraphrases": _LIST_SEPARATOR.join(record.paraphrases),
        "warnings": _LIST_SEPARATOR.join(record.warnings),
    }
    rows = record.to_records() or [{"need": record.need}]
    return [{**row, **shared, "item": i, "items": len(rows)} for i, row in enumerate(rows, start=1)]


def _one_line(value: object) -> object:
    """Cells never contain line breaks, so every CSV record is whole physical lines."""
    if isinstance(value, str):
        return " ".join(value.splitlines())
    return value


def open_output(path: Path | None, *, resume: bool) -> tuple[RecordWriter, Done]:
    """A writer for ``path`` (stdout when None, as JSONL) and what it already holds.

    Without ``resume`` an existing non-empty file is refused, so a long run's results are never
    overwritten by accident. With ``resume`` a half-written tail is cut off first.
    """
    if path is None:
        if resume:
            raise BatchOutputError("--resume needs --out: it continues the results already in that file")
        stdout = getattr(sys.stdout, "buffer", None)
        if stdout is None:
            raise BatchOutputError("stdout is not a byte stream here; pass --out results.jsonl")
        return JsonlWriter(lambda: stdout, sync=False, name="stdout"), Done()

    fmt = output_format(path)
    path = path.expanduser()
    exists = path.is_file() and path.stat().st_size > 0
    if exists and not resume:
        raise BatchOutputError(f"{path} already exists: add --resume to continue it, or remove it first")
    done = Done()
    if exists:
        done = _repair_csv(path) if fmt == "csv" else _repair_jsonl(path)
    elif not _writable(path):
        raise BatchOutputError(f"cannot write {path}: its folder is not writable")

    def open_stream() -> IO[bytes]:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("ab")

    writer = CsvWriter if fmt == "csv" else JsonlWriter
    return writer(open_stream, sync=True, name=str(path)), done


def _writable(path: Path) -> bool:
    """Whether ``path`` can be created: its nearest existing folder is writable."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK)


def _whole_lines(path: Path) -> list[bytes]:
    """The file's complete lines; a half-written last line (no newline yet) is cut off the file."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        _truncate(path, end)
    return data[:end].splitlines(keepends=True)


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as stream:
        stream.truncate(size)


def _repair_jsonl(path: Path) -> Done:
    done = Done()
    for line in _whole_lines(path):
        try:
            item = json.loads(line)
            done.add(str(item["need"]), item.get("error"), item.get("line"))
        except (ValueError, KeyError, TypeError):
            done.unreadable += 1
    return done


def _repair_csv(path: Path) -> Done:
    lines = _whole_lines(path)
    try:
        header = next(csv.reader([lines[0].decode("utf-8", errors="replace")]), []) if lines else []
        if tuple(header) != CSV_COLUMNS:
            raise BatchOutputError(
                f"{path} is not a Whazzat batch CSV (its header differs); choose another --out"
            )
        rows = list(csv.DictReader(line.decode("utf-8", errors="replace") for line in lines))
    except csv.Error as error:  # e.g. a field over csv's size limit: not a file we wrote
        raise BatchOutputError(
            f"{path} is not a readable Whazzat batch CSV ({error}); choose another --out"
        ) from None
    # The last need's rows are whole lines but, after a crash mid-write, maybe not all of them: cut them
    # off and answer that need again.
    if rows:
        last = rows[-1]
        try:
            item, items = int(last["item"]), int(last["items"])
        except (TypeError, ValueError):
            item = items = 1
        if item < items:
            keep = len(lines) - item
            _truncate(path, sum(len(line) for line in lines[:keep]))
            rows = rows[: len(rows) - item]
    done = Done()
    for row in rows:
        try:
            line = int(row["line"]) if row.get("line") else None
        except ValueError:
            line = None
        done.add(row.get("need") or "", row.get("error") or None, line)
    return done
