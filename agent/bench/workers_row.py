"""The ``--workers`` row: ``whazzat batch --workers N`` over the batch-mode needs, timed as a user runs it.

``agent.bench`` and ``agent.batch`` are sibling layers that never import each other, and a user's figure
counts what a user waits for anyway: so the bench runs the real command in a fresh process,

    python -m agent batch needs.txt --out out.jsonl --workers N --quiet

and times it whole, process start, imports and each worker's model load included. The child gets the
bench's whazzat settings (its ``--set``, ``--model``, ``--adapter``...) as ``WHAZZAT_<FIELD>`` variables,
the links backend like the in-process batch row, and the answer cache off, so every answer is generated,
none read from disk. A rate only counts when the output holds one record per need and no error record:
a batch that broke never shows as fast.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.bench.figures import WorkersBatch
from agent.bench.probes import child_env, run_measured

#: What the child is told on top of the bench's overrides: generation timed, not cache reads, and the
#: same backend as the in-process batch row.
FORCED_SETTINGS = {"answer_cache_days": "0", "backend": "links"}
#: A stuck child (a worker that never loads) ends here, as a failed row, not a hung bench.
TIMEOUT_S = 1800.0


def batch_command(needs_file: Path, out: Path, workers: int) -> list[str]:
    """The real ``whazzat batch`` command, started through this interpreter (no console script needed)."""
    return [
        sys.executable, "-m", "agent", "batch", str(needs_file),
        "--out", str(out), "--workers", str(workers), "--quiet",
    ]  # fmt: skip


def batch_settings(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The whazzat side's overrides with :data:`FORCED_SETTINGS` on top (what the child's env carries)."""
    return {**{key: value for key, value in overrides.items() if value is not None}, **FORCED_SETTINGS}


def last_line(stderr: str) -> str:
    """The last non-empty line of a child's stderr: ``Error: ...`` or an exception's own line, never its
    traceback (progress bars that redraw with carriage returns count as separate lines)."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", stderr) if line.strip()]
    return lines[-1] if lines else "no message on stderr"


def check_records(out: Path, needs: Sequence[str]) -> tuple[int, str | None]:
    """(records in ``out``, why they are not one good record per need in order, or None when they are)."""
    try:
        lines = [line for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        return 0, f"cannot read the batch's output: {error}"
    try:
        records = [json.loads(line) for line in lines]
    except ValueError as error:
        return len(lines), f"the batch's output is not JSON lines ({error})"
    errors = [record for record in records if isinstance(record, dict) and record.get("error")]
    if errors:
        return len(records), f"{len(errors)} of {len(records)} records are errors, e.g. {errors[0]['error']}"
    if len(records) != len(needs):
        return len(records), f"the output holds {len(records)} records for {len(needs)} needs"
    answered = [record.get("need") if isinstance(record, dict) else None for record in records]
    if answered != list(needs):
        return len(records), "the output's needs are not the needs given, in order"
    return len(records), None


def run_workers_batch(
    needs: Sequence[str],
    overrides: Mapping[str, Any],
    workers: int,
    *,
    command: Callable[[Path, Path, int], list[str]] = batch_command,
    timeout_s: float = TIMEOUT_S,
) -> WorkersBatch:
    """Time ``whazzat batch --workers N`` over ``needs`` in a fresh process; ``failed`` says why when it
    exited non-zero, timed out or left other than one record per need (then there is no rate)."""
    settings = batch_settings(overrides)
    env = child_env(settings)
    shown = {f"WHAZZAT_{key.upper()}": env[f"WHAZZAT_{key.upper()}"] for key in settings}
    # As a user would type it (the temporary paths mean nothing after the run).
    typed = shlex.join(["whazzat", *batch_command(Path("needs.txt"), Path("out.jsonl"), workers)[3:]])
    figures: dict[str, Any] = {
        "workers": workers,
        "needs": len(needs),
        "command": typed,
        "environment": shown,
    }
    with tempfile.TemporaryDirectory(prefix="whazzat-bench-workers-") as scratch:
        needs_file, out = Path(scratch) / "needs.txt", Path(scratch) / "out.jsonl"
        needs_file.write_text("".join(f"{need}\n" for need in needs), encoding="utf-8")
        argv = command(needs_file, out, workers)
        try:
            run = run_measured(argv, env, timeout_s=timeout_s)
        except subprocess.TimeoutExpired:
            return WorkersBatch(**figures, failed=f"no result after {timeout_s:g} s; the batch was stopped")
        figures["wall_s"] = round(run.wall_s, 3)
        if run.returncode != 0:
            return WorkersBatch(**figures, failed=f"exit {run.returncode}: {last_line(run.stderr)}")
        records, wrong = check_records(out, needs)
    if wrong is not None:
        return WorkersBatch(**figures, records=records, failed=wrong)
    return WorkersBatch(**figures, records=records, needs_per_s_workers=round(len(needs) / run.wall_s, 4))


def workers_row(
    workers: int,
    skipped: bool,
    needs: Sequence[str],
    overrides: Mapping[str, Any],
    say: Callable[[str], None],
) -> WorkersBatch:
    """The row as the bench asked for it: skipped (saying why), or timed."""
    if skipped:
        return WorkersBatch(skipped="--skip workers")
    if workers == 0:
        return WorkersBatch(skipped="--workers 0")
    say(
        f"whazzat: whazzat batch --workers {workers}, {len(needs)} needs in a fresh process "
        "(process start and model loads included), links backend, answer cache off"
    )
    row = run_workers_batch(needs, overrides, workers)
    if row.failed is not None:
        say(f"whazzat batch --workers {workers} failed: {row.failed}")
    return row
