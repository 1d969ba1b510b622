"""The feedback store (append-only JSONL under WHAZZAT_HOME) and its export to finetune training rows."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from agent.cli.ui import feedback_app
from agent.core.config import get_settings
from agent.pipeline.feedback import (
    FeedbackRecord,
    append_feedback,
    export_training_rows,
    feedback_path,
    latest_per_answer,
    read_feedback,
    training_rows,
)
from finetune.dataset import read_records

NEED = "something to dig food"


def record(answer_id: str = "a1", **fields: object) -> FeedbackRecord:
    values: dict[str, object] = {"need": NEED, "paraphrases": ["a tool for digging"],
                                 "products": ["Garden Trowel", "hand rake"], "verdict": "up"}
    values.update(fields)
    return FeedbackRecord(answer_id=answer_id, **values)


def test_feedback_lives_under_whazzat_home(isolated_home: Path) -> None:
    assert feedback_path(get_settings().home_dir) == isolated_home / "feedback" / "feedback.jsonl"


def test_records_are_appended_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "feedback" / "feedback.jsonl"
    append_feedback(record("a1"), path)
    append_feedback(record("a2", verdict="down", comment="  too pricey "), path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["need"] == NEED
    records, skipped = read_feedback(path)
    assert skipped == 0
    assert [r.answer_id for r in records] == ["a1", "a2"]
    assert records[1].comment == "too pricey" and records[1].verdict == "down"


def test_unreadable_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    append_feedback(record("a1"), path)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"answer_id": "a2", "need": "half a li\n\nnot json at all\n')
    append_feedback(record("a3"), path)
    records, skipped = read_feedback(path)
    assert [r.answer_id for r in records] == ["a1", "a3"] and skipped == 2


def test_a_missing_file_is_no_feedback(tmp_path: Path) -> None:
    assert read_feedback(tmp_path / "nope.jsonl") == ([], 0)


def test_the_latest_vote_and_comment_win_per_answer() -> None:
    merged = latest_per_answer([
        record("a1", verdict="up"),
        record("a2", verdict="down"),
        record("a1", verdict="down"),
        record("a1", verdict=None, comment="missing a spade"),
    ])
    assert [(r.answer_id, r.verdict, r.comment) for r in merged] == [
        ("a1", "down", "missing a spade"),
        ("a2", "down", None),
    ]


def test_training_rows_come_from_liked_answers_only() -> None:
    rows = training_rows([
        record("a1", products=["Garden Trowel", "garden trowel", " hand rake ", "", "a", "b", "c", "d", "e"]),
        record("a2", need="a gift for a fisherman", verdict="down"),
        record("a3", need="my back hurts", products=[]),
        record("a4", need="SOMETHING TO DIG FOOD", products=["spade", "kneeling pad"]),
    ])
    assert [row.model_dump() for row in rows] == [
        {"need": "SOMETHING TO DIG FOOD", "products": ["spade", "kneeling pad"], "paraphrases": []},
    ]
    capped = training_rows([record("b1", products=["p1", "p2", "p3", "p4", "p5", "p6", "p7"])])
    assert capped[0].products == ["p1", "p2", "p3", "p4", "p5", "p6"]


def test_export_writes_rows_the_finetune_reader_accepts(tmp_path: Path) -> None:
    source = tmp_path / "feedback.jsonl"
    for item in (record("a1"), record("a2", need="a gift for a fisherman", products=["tackle box"]),
                 record("a3", need="my back hurts", verdict="down")):
        append_feedback(item, source)
    out = tmp_path / "out" / "feedback-train.jsonl"
    summary = export_training_rows(source, out)
    assert (summary.rows, summary.answers, summary.liked, summary.skipped_lines) == (2, 3, 2, 0)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"need": NEED, "products": ["garden trowel", "hand rake"], "paraphrases": []}
    parsed = read_records(out)
    assert [r.need for r in parsed] == [NEED, "a gift for a fisherman"]


def test_feedback_export_command(isolated_home: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(feedback_app, name="feedback")
    runner = CliRunner()
    out = tmp_path / "rows.jsonl"

    missing = runner.invoke(app, ["feedback", "export", str(out)])
    assert missing.exit_code == 1 and "No feedback yet" in missing.output

    append_feedback(record("a1"), feedback_path(isolated_home))
    done = runner.invoke(app, ["feedback", "export", str(out)])
    assert done.exit_code == 0, done.output
    assert "Wrote 1 training rows" in done.output
    assert json.loads(out.read_text(encoding="utf-8"))["products"] == ["garden trowel", "hand rake"]
    # ... and the rows join the need memory, once however often the export runs
    from agent.pipeline.memory import read_rows_file, user_rows_path

    assert "Added 1 new rows to the need memory" in done.output
    again = runner.invoke(app, ["feedback", "export", str(out)])
    assert "Added 0 new rows" in again.output
    [row] = read_rows_file(user_rows_path(isolated_home))
    assert (row.need, row.source) == (NEED, "feedback")
