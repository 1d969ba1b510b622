"""Read the needs of a batch: a text file, a CSV, a JSONL, or stdin.

* text: one need per line; blank lines are skipped (they separate, they are not rows);
* CSV: a header row and a ``need`` column (``--column`` picks another);
* JSONL: one JSON object per line with a ``need`` field (``--column`` picks another).

Every row becomes an :class:`InputRow`: either a validated need, or the reason the row is unusable
(empty, too long, control characters, not UTF-8, not JSON ...), so one bad row never stops a batch. Only a
problem with the input as a whole (missing file, no such column) raises :class:`BatchInputError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from agent.core.config import MAX_NEED_CHARS
from agent.core.errors import InputError, WhazzatError
from agent.pipeline.validation import validate_need

InputFormat = Literal["txt", "csv", "jsonl"]
INPUT_FORMATS: tuple[str, ...] = ("txt", "csv", "jsonl")
STDIN = "-"

_SUFFIXES: dict[str, InputFormat] = {".txt": "txt", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Bytes that are not UTF-8 survive decoding as lone surrogates ("surrogateescape"), so a bad row can be
# reported on its own instead of failing the whole file.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")
NOT_UTF8 = "the row is not valid UTF-8 text; save the file as UTF-8"


class BatchInputError(WhazzatError):
    """The batch input as a whole cannot be read: the message says what to fix."""


@dataclass(frozen=True)
class InputRow:
    """One row of the input: ``need`` when it is usable, else ``error`` says why not."""

    line: int  # line number in the input (for CSV, the line where the row ends), for error records
    raw: str  # the row's text as given (shortened, undecodable bytes replaced), for error records
    need: str | None = None
    error: str | None = None


def read_input(
    source: str,
    *,
    column: str = "need",
    input_format: InputFormat | None = None,
    stdin: BinaryIO | None = None,
) -> list[InputRow]:
    """All rows of ``source`` (a path, or ``-`` for ``stdin``), in order.

    The format comes from ``input_format``, else the file's suffix, else the content (a first line
    starting with ``{`` means JSONL, anything else plain text; CSV needs the suffix or ``--format csv``).
    """
    data = _read_bytes(source, stdin)
    fmt = input_format or guess_format(source, data)
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")
    name = "stdin" if source == STDIN else Path(source).name
    if fmt == "csv":
        return list(_csv_rows(text, column, name))
    if fmt == "jsonl":
        return list(_jsonl_rows(text, column))
    return list(_text_rows(text))


def guess_format(source: str, data: bytes) -> InputFormat:
    """The input format from the file suffix, or from the first non-blank line."""
    if source != STDIN:
        suffix = Path(source).suffix.lower()
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    for line in data.removeprefix(b"\xef\xbb\xbf").splitlines():
        if line.strip():
            return "jsonl" if line.lstrip().startswith(b"{") else "txt"
    return "txt"


def _read_bytes(source: str, stdin: BinaryIO | None) -> bytes:
    if source == STDIN:
        stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
        if stream is None:  # a text-only stdin (some embedding environments)
            return sys.stdin.read().encode("utf-8", errors="surrogateescape")
        return stream.read()
    path = Path(source).expanduser()
    if not path.is_file():
        raise BatchInputError(
            f"input file not found: {source} (give a .txt, .csv or .jsonl file, or - for stdin)"
        )
    try:
        return path.read_bytes()
    except OSError as error:
        raise BatchInputError(f"cannot read {source}: {error.strerror or error}") from error


def _readable(text: str) -> str:
    """``text`` with undecodable bytes shown as U+FFFD and cut to a sane length, for error records."""
    # Other lone surrogates (a JSON "\ud800" escape) are not bytes we could give back: U+FFFD as well.
    text = _LONE_SURROGATE.sub("\ufffd", text)
    text = text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    return text if len(text) <= MAX_NEED_CHARS else text[:MAX_NEED_CHARS] + "…"


def _row(line: int, value: object) -> InputRow:
    """Validate one need value into a row."""
    raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and _UNDECODABLE.search(value):
        return InputRow(line, _readable(raw), error=NOT_UTF8)
    try:
        return InputRow(line, raw, need=validate_need(value))
    except InputError as error:
        return InputRow(line, _readable(raw), error=str(error))


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for every non-blank line. Splits on newlines only: other separators
    (form feed, U+2028 ...) stay inside the line, where validation reports them."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip(" \t"):
            yield number, line


def _text_rows(text: str) -> Iterator[InputRow]:
    for number, line in _lines(text):
        yield _row(number, line)


def _jsonl_rows(text: str, column: str) -> Iterator[InputRow]:
    for number, line in _lines(text):
        try:
            item = json.loads(line)
        except ValueError:
            yield InputRow(number, _readable(line), error="the line is not valid JSON")
            continue
        if not isinstance(item, dict):
            yield InputRow(number, _readable(line), error=f"expected a JSON object with a {column!r} field")
        elif column not in item:
            yield InputRow(number, _readable(line), error=f"the object has no {column!r} field")
        else:
            yield _row(number, item[column])


def _csv_rows(text: str, column: str, name: str) -> Iterator[InputRow]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames
        if not header:
            raise BatchInputError(f"{name} is empty; a CSV needs a header row with a {column!r} column")
        if column not in header:
            found = ", ".join(repr(h) for h in header)
            raise BatchInputError(
                f"{name} has no {column!r} column (columns: {found}); choose one with --column"
            )
        for row in reader:
            value = row.get(column)
            if value is None:  # a short row: fewer cells than the header
                yield InputRow(reader.line_num, "", error=f"the row has no {column!r} value")
            else:
                yield _row(reader.line_num, value)
    except csv.Error as error:
        raise BatchInputError(f"{name} is not a readable CSV (line {reader.line_num}): {error}") from error
