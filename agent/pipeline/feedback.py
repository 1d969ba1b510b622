"""User feedback on answers: an append-only JSONL store under ``WHAZZAT_HOME``, and its export to
training rows.

Each thumbs up/down or comment in the UI appends one :class:`FeedbackRecord` to
``$WHAZZAT_HOME/feedback/feedback.jsonl``. Records are never rewritten: when a user changes their
mind or adds a comment later, a new record with the same ``answer_id`` is appended and the latest one
wins (see :func:`latest_per_answer`).

:func:`export_training_rows` turns the liked answers into rows in the format of
``finetune/data/train.jsonl``::

    {"need": "something to dig food", "products": ["garden trowel", "hand rake"], "paraphrases": []}

which the finetune command accepts as a data file (``--set data.train_file=...``). Paraphrases are left
empty on purpose: the model's own paraphrases are unchecked, so they must not become training targets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

FEEDBACK_DIR = "feedback"
FEEDBACK_FILE = "feedback.jsonl"
#: The finetune data format keeps at most this many product types per need.
MAX_TRAINING_PRODUCTS = 6
MAX_COMMENT_CHARS = 2000

Verdict = Literal["up", "down"]

_write_lock = threading.Lock()


class FeedbackRecord(BaseModel):
    """One user reaction to one answer: what was asked, what was shown, and the verdict or comment."""

    # Reading tolerates fields added by later versions; writing always produces the current fields.
    model_config = ConfigDict(extra="ignore")

    answer_id: str = Field(min_length=1, max_length=64, description="Which answer (one per shown result).")
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    need: str = Field(min_length=1, description="The user's need, as validated by the chain.")
    paraphrases: list[str] = Field(default_factory=list, description="The model's paraphrases of the need.")
    products: list[str] = Field(default_factory=list, description="The product types shown, best first.")
    urls: list[str] = Field(default_factory=list, description="The listing links shown, in order.")
    verdict: Verdict | None = Field(default=None, description="Thumbs up or down; None for a comment alone.")
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    settings: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="The chat settings the answer was made with (backend, domain...)."
    )

    @field_validator("comment")
    @classmethod
    def _blank_comment_is_none(cls, comment: str | None) -> str | None:
        if comment is None:
            return None
        return comment.strip() or None


class TrainingRow(BaseModel):
    """A row of the finetune data format (``finetune/data/train.jsonl``)."""

    model_config = ConfigDict(extra="forbid")

    need: str
    products: list[str] = Field(min_length=1)
    paraphrases: list[str] = Field(default_factory=list)


class ExportSummary(BaseModel):
    """What :func:`export_training_rows` did, for the CLI to report."""

    out: Path
    rows: int = Field(description="Training rows written.")
    answers: int = Field(description="Distinct answers with feedback.")
    liked: int = Field(description="Answers whose latest verdict is thumbs up.")
    skipped_lines: int = Field(description="Unreadable lines in the feedback file (left out).")


def feedback_path(home: Path) -> Path:
    """Where the feedback of the Whazzat home ``home`` lives."""
    return home.expanduser() / FEEDBACK_DIR / FEEDBACK_FILE


def append_feedback(record: FeedbackRecord, path: Path) -> Path:
    """Append ``record`` as one JSON line (thread-safe within the process; one write per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = record.model_dump_json() + "\n"
    with _write_lock, path.open("a", encoding="utf-8") as handle:
        handle.write(line)
    return path


def read_feedback(path: Path) -> tuple[list[FeedbackRecord], int]:
    """Every readable record of ``path`` and the number of unreadable lines (a crash mid-write must not
    block an export forever, so bad lines are counted and logged, not fatal). A missing file is empty."""
    if not path.is_file():
        return [], 0
    records: list[FeedbackRecord] = []
    skipped = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(FeedbackRecord.model_validate_json(line))
        except ValidationError as error:  # also raised for invalid JSON
            skipped += 1
            log.warning("%s:%d: skipped an unreadable feedback line (%s)", path, number, error.errors()[0]["msg"])
    return records, skipped


def latest_per_answer(records: Iterable[FeedbackRecord]) -> list[FeedbackRecord]:
    """One record per answer, in first-seen order: the latest verdict and the latest comment win."""
    merged: dict[str, FeedbackRecord] = {}
    for record in records:
        previous = merged.get(record.answer_id)
        if previous is None:
            merged[record.answer_id] = record
            continue
        merged[record.answer_id] = record.model_copy(update={
            "verdict": record.verdict or previous.verdict,
            "comment": record.comment or previous.comment,
        })
    return list(merged.values())


def training_rows(records: Iterable[FeedbackRecord]) -> list[TrainingRow]:
    """Training rows from the answers users liked: need -> the product types shown (lowercased, unique,
    at most :data:`MAX_TRAINING_PRODUCTS`). When the same need was liked several times, the latest wins."""
    rows: dict[str, TrainingRow] = {}
    for record in latest_per_answer(records):
        if record.verdict != "up":
            continue
        products = list(dict.fromkeys(p.strip().lower() for p in record.products if p.strip()))
        if not products:
            continue
        key = record.need.casefold()
        rows.pop(key, None)  # re-insert so that order follows the latest like
        rows[key] = TrainingRow(need=record.need, products=products[:MAX_TRAINING_PRODUCTS])
    return list(rows.values())


def export_training_rows(source: Path, out: Path) -> ExportSummary:
    """Write the training rows of the feedback file ``source`` to ``out`` (JSONL, overwritten)."""
    records, skipped = read_feedback(source)
    answers = latest_per_answer(records)
    rows = training_rows(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(row.model_dump_json() + "\n" for row in rows), encoding="utf-8")
    return ExportSummary(
        out=out,
        rows=len(rows),
        answers=len(answers),
        liked=sum(1 for answer in answers if answer.verdict == "up"),
        skipped_lines=skipped,
    )

