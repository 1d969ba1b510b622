"""Progress and the end-of-run summary of a batch, on stderr (stdout may carry the results).

On a terminal: a rich progress bar with needs done, rate and ETA. Elsewhere (CI logs, pipes, notebooks'
captured output): one plain line per chunk, which reads well in a log file.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from agent.batch.runner import BatchSummary


class BatchProgress(ABC):
    """Told when the work starts and after each chunk."""

    def start(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.errors = 0
        self.started = time.perf_counter()

    def advance(self, needs: int, errors: int) -> None:
        self.done += needs
        self.errors += errors
        self.show()

    @abstractmethod
    def show(self) -> None:
        """Render the current state."""

    def close(self) -> None:
        """Finish the display (leave the last state visible)."""

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self) -> float | None:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else None


class NoProgress(BatchProgress):
    def show(self) -> None:
        pass


class LineProgress(BatchProgress):
    """``batch: 32/50 needs (64%) · 4.1 needs/s · ETA 0:00:04 · 1 error``, one line per chunk."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def show(self) -> None:
        percent = 100 * self.done // self.total if self.total else 100
        eta = self.eta_seconds()
        parts = [
            f"batch: {self.done}/{self.total} needs ({percent}%)",
            format_rate(self.rate()),
            f"ETA {_clock(eta)}" if eta is not None else "ETA ?",
            plural(self.errors, "error"),
        ]
        self.console.print(" · ".join(parts), highlight=False, soft_wrap=True)


class BarProgress(BatchProgress):
    """A rich progress bar: done/total, rate, elapsed time and ETA."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]Batch[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("needs · {task.fields[rate]} · ETA"),
            TimeRemainingColumn(),
            TextColumn("· {task.fields[errors]}"),
            console=console,
        )
        self._task = None

    def start(self, total: int) -> None:
        super().start(total)
        self._progress.start()
        self._task = self._progress.add_task("batch", total=total, rate="? needs/s", errors="0 errors")

    def show(self) -> None:
        self._progress.update(
            self._task,
            completed=self.done,
            rate=format_rate(self.rate()),
            errors=plural(self.errors, "error"),
        )

    def close(self) -> None:
        self._progress.stop()


def make_progress(console: Console, *, quiet: bool = False) -> BatchProgress:
    """A bar on a terminal, plain lines elsewhere, nothing when ``quiet``."""
    if quiet:
        return NoProgress()
    return BarProgress(console) if console.is_terminal else LineProgress(console)


def print_summary(console: Console, summary: BatchSummary, output: str) -> None:
    """Needs done, errors, searches and wall time, in a few plain lines."""
    s = summary
    stopped_early = s.interrupted or s.stopped is not None
    done = f"{'Stopped early' if stopped_early else 'Done'}: {plural(s.answered, 'need')} answered, "
    done += plural(s.errors, "error")
    if s.skipped:
        done += f", {s.skipped} already in {escape(output)} (skipped)"
    if s.duplicates:
        done += f", {plural(s.duplicates, 'duplicate row')} answered once"
    calls, hits = plural(s.search.calls, "API call"), plural(s.search.cache_hits, "cache hit")
    search = (
        f"Search: {plural(s.search.searched, 'product type')} searched ({calls}, {hits}), "
        f"{s.search.reused} reused across needs"
    )
    total = s.setup_seconds + s.wall_seconds
    timing = f"Wall time: {total:.1f} s"
    details = [f"{s.setup_seconds:.1f} s loading the model"] if s.setup_seconds >= 0.1 else []
    if s.answered and s.wall_seconds > 0:
        details.append(format_rate(s.answered / s.wall_seconds))
    if details:
        timing += f" ({', '.join(details)})"
    lines = [done, search, timing]
    if s.workers > 1:
        lines.append(_workers_line(s))
    if s.stopped is not None:
        lines.append(f"The run stopped: {escape(s.stopped)}; with less memory, try fewer --workers.")
    if stopped_early:
        lines.append(f"Everything done so far is saved; run again with --resume to finish {escape(output)}.")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def _workers_line(s: BatchSummary) -> str:
    """``Workers: 2 processes; 1 died (killed by SIGKILL ...), 1 chunk answered again``."""
    line = f"Workers: {s.workers} processes"
    if s.worker_losses:
        reasons = "; ".join(dict.fromkeys(s.worker_losses))  # each reason once, in order
        line += f"; {len(s.worker_losses)} lost ({escape(reasons)})"
    if s.retried:
        line += f", {plural(s.retried, 'chunk')} answered again by another worker"
    return line


def format_rate(per_second: float) -> str:
    """``4.2 needs/s``, or per minute when slower than one a second (a CPU with a big model)."""
    if per_second >= 1 or per_second == 0:
        return f"{per_second:.1f} needs/s"
    return f"{per_second * 60:.1f} needs/min"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
