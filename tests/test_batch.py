"""``whazzat batch`` on a fake model: records, batching across needs, crash safety, resume, bad rows,
input formats and exit codes. The command is registered on a tiny typer app, as the real CLI does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import agent.pipeline.chain
import tools.registry
from agent.cli.batch import batch
from agent.core.schemas import Recommendation
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM
from tools.base import SearchOutcome, SearchQuery
from tools.links import LinksBackend

ROOT = Path(__file__).resolve().parent.parent
POOL = ["garden trowel", "desk lamp", "yoga mat", "water bottle", "tent", "kettle", "fishing rod"]
NEEDS = [f"need number {i} for my home" for i in range(50)]
runner = CliRunner()

app = typer.Typer()


@app.callback()
def _main() -> None:
    """Whazzat (test app with the batch command)."""


app.command("batch")(batch)


def fake_llm_for(needs: list[str], cls: type[FakeWhazzatLLM] = FakeWhazzatLLM, **fields) -> FakeWhazzatLLM:
    """Two rewrites per need, and two product types per need from a small shared pool."""
    return cls(
        rewrites={need: f"home version of wish {i}\nwork version of wish {i}" for i, need in enumerate(needs)},
        products={
            need: f"{POOL[i % len(POOL)]}, {POOL[(i + 1) % len(POOL)]}" for i, need in enumerate(needs)
        },
        prompts=[],
        **fields,
    )


class CountingLinks(LinksBackend):
    """The links backend, counting searches per keyword."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def search(self, query: SearchQuery) -> SearchOutcome:
        self.searched.append(query.keyword)
        return super().search(query)


class InterruptingLLM(FakeWhazzatLLM):
    """Sends itself ``signal_number`` (SIGINT), ``signals`` times, during generate call ``interrupt_on``."""

    interrupt_on: int = 3
    signals: int = 1
    signal_number: int = signal.SIGINT

    def _generate(self, prompts, *args, **kwargs):
        result = super()._generate(prompts, *args, **kwargs)
        if self.generate_calls == self.interrupt_on:
            for _ in range(self.signals):
                os.kill(os.getpid(), self.signal_number)
                time.sleep(0.01)  # let the handler run before the next signal
        return result


@pytest.fixture
def use_llm(monkeypatch: pytest.MonkeyPatch):
    """Make ``batch`` build its chain on the given fake model (keeping its shared search backend), and
    count the searches that reach the links backend."""
    state: dict[str, object] = {"llm": fake_llm_for(NEEDS), "links": CountingLinks(), "builds": 0}
    real_build = agent.pipeline.chain.build_chain

    def build(settings=None, *, backend=None, **overrides):
        state["builds"] += 1
        return real_build(
            settings, llm=state["llm"], backend=backend, similarity=exact_similarity, **overrides
        )

    monkeypatch.setattr(agent.pipeline.chain, "build_chain", build)
    monkeypatch.setattr(tools.registry, "make_backend", lambda settings: state["links"])

    def set_llm(llm: FakeWhazzatLLM | None = None) -> dict[str, object]:
        if llm is not None:
            state["llm"] = llm
        return state

    return set_llm


def write_needs(path: Path, needs: list[str] = NEEDS) -> Path:
    path.write_text("\n".join(needs) + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(*args: str, input: str | bytes | None = None):
    return runner.invoke(app, ["batch", *map(str, args)], input=input)


# --- the done-when of issue 6 ---------------------------------------------------------------------------
def test_fifty_needs_give_fifty_records_batched_across_needs(tmp_path: Path, use_llm) -> None:
    state = use_llm()
    out = tmp_path / "r.jsonl"
    result = run(write_needs(tmp_path / "needs.txt"), "--out", out, "-p", "2", "--chunk-size", "16")

    assert result.exit_code == 0, result.output
    records = read_jsonl(out)
    assert [record["need"] for record in records] == NEEDS
    assert all(Recommendation.model_validate(record).products for record in records)
    # One model load, and per chunk of 16 needs two generate calls: the rewrites with the needs' own
    # suggest prompts, then the paraphrases' suggest prompts.
    assert state["builds"] == 1
    assert state["llm"].generate_calls == 2 * 4
    # Product types are searched once for the whole batch, however many needs propose them.
    searched = state["links"].searched
    assert sorted(searched) == sorted(set(searched))
    assert set(POOL) <= set(searched)
    # Plain progress lines (not a terminal) and the summary, on stderr.
    assert "batch: 16/50 needs (32%)" in result.stderr and "batch: 50/50 needs (100%)" in result.stderr
    assert "needs/s" in result.stderr and "ETA" in result.stderr
    assert "Done: 50 needs answered, 0 errors" in result.stderr
    assert f"{len(searched)} product types searched (0 API calls, 0 cache hits)" in result.stderr
    assert "Wall time:" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_stops_after_the_chunk_and_resume_finishes(
    tmp_path: Path, use_llm, signal_number: int
) -> None:
    needs_file, out = write_needs(tmp_path / "needs.txt"), tmp_path / "r.jsonl"
    # The signal arrives during the second chunk's rewrite call.
    use_llm(fake_llm_for(NEEDS, InterruptingLLM, interrupt_on=3, signal_number=signal_number))

    stopped = run(needs_file, "--out", out, "-p", "2", "--chunk-size", "16")
    assert stopped.exit_code == 130, stopped.output
    assert "Stopping after the current chunk" in stopped.stderr
    assert "Stopped early: 32 needs answered" in stopped.stderr and "--resume" in stopped.stderr
    assert [record["need"] for record in read_jsonl(out)] == NEEDS[:32]

    state = use_llm(fake_llm_for(NEEDS))
    resumed = run(needs_file, "--out", out, "-p", "2", "--chunk-size", "16", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "18 needs answered" in resumed.stderr and "32 already in" in resumed.stderr
    assert [record["need"] for record in read_jsonl(out)] == NEEDS  # nothing lost, nothing twice
    asked = {
        prompt.split("this need: ")[-1].split("\n")[0]
        for prompt in state["llm"].prompts
        if "rewrites of" in prompt
    }
    assert asked == set(NEEDS[32:])  # nothing redone


def test_second_ctrl_c_stops_at_once_losing_only_the_chunk_in_flight(tmp_path: Path, use_llm) -> None:
    needs_file, out = write_needs(tmp_path / "needs.txt"), tmp_path / "r.jsonl"
    use_llm(fake_llm_for(NEEDS, InterruptingLLM, interrupt_on=3, signals=2))

    stopped = run(needs_file, "--out", out, "-p", "2")
    assert stopped.exit_code == 130, stopped.output
    records = read_jsonl(out)
    assert [record["need"] for record in records] == NEEDS[:16]
    assert not any("error" in record for record in records)  # the interrupt is not recorded as failures

    use_llm(fake_llm_for(NEEDS))
    assert run(needs_file, "--out", out, "-p", "2", "--resume").exit_code == 0
    assert [record["need"] for record in read_jsonl(out)] == NEEDS


def test_resume_cuts_off_a_half_written_line(tmp_path: Path, use_llm) -> None:
    needs_file, out = write_needs(tmp_path / "needs.txt"), tmp_path / "r.jsonl"
    assert run(needs_file, "--out", out, "-p", "0").exit_code == 0
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:10]) + lines[10][:25], encoding="utf-8")  # killed in the middle of a write

    result = run(needs_file, "--out", out, "-p", "0", "--resume")
    assert result.exit_code == 0, result.output
    assert [record["need"] for record in read_jsonl(out)] == NEEDS


def test_killed_process_resumes_without_redoing_or_losing(tmp_path: Path, use_llm) -> None:
    """A real ``kill -9`` of a running batch, then --resume in this process."""
    needs_file, out = write_needs(tmp_path / "needs.txt"), tmp_path / "r.jsonl"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import agent.pipeline.chain, typer
        from agent.cli.batch import batch
        from tests.conftest import exact_similarity
        from tests.test_batch import NEEDS, fake_llm_for, FakeWhazzatLLM

        class SlowLLM(FakeWhazzatLLM):
            def _generate(self, *args, **kwargs):
                time.sleep(0.3)
                return super()._generate(*args, **kwargs)

        real_build = agent.pipeline.chain.build_chain
        llm = fake_llm_for(NEEDS, SlowLLM)
        agent.pipeline.chain.build_chain = lambda settings=None, *, backend=None, **o: real_build(
            settings, llm=llm, backend=backend, similarity=exact_similarity, **o)
        typer.run(batch)
    """)
    kill_9_after(script, [needs_file, "--out", out, "-p", "0", "--chunk-size", "4", "-q"], out, lines=8)
    done_before = [record["need"] for record in read_jsonl(out)]
    assert 8 <= len(done_before) < 50

    result = run(needs_file, "--out", out, "-p", "0", "--resume")
    assert result.exit_code == 0, result.output
    assert [record["need"] for record in read_jsonl(out)] == NEEDS
    assert f"{len(done_before)} already in" in result.stderr


def kill_9_after(script: str, args: list[object], out: Path, lines: int) -> None:
    """Run ``python -c script *args`` (a batch), and ``kill -9`` it once ``out`` holds ``lines`` records."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if out.exists() and len(out.read_bytes().splitlines()) >= lines:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()
        process.kill()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()


# --- bad rows ---------------------------------------------------------------------------------------------
def test_malformed_text_rows_give_error_records(tmp_path: Path, use_llm) -> None:
    source = tmp_path / "needs.txt"
    source.write_bytes(
        b"something to dig food\n"
        b"\n"  # blank: skipped, not a row
        b"\xe2\x80\x8b\n" + b"x" * 600 + b"\n"  # only a zero-width space: empty  # too long
        b"caf\xe9 au lait\n"  # Latin-1, not UTF-8
        b"tab\x07bell\n"  # control character
        b"a quiet fan for my bedroom"  # no final newline
    )
    out = tmp_path / "r.jsonl"
    result = run(source, "--out", out, "-p", "0")

    assert result.exit_code == 1, result.output
    records = read_jsonl(out)
    errors = {record["line"]: record for record in records if "error" in record}
    assert set(errors) == {3, 4, 5, 6}
    assert "empty" in errors[3]["error"]
    assert "500" in errors[4]["error"] and len(errors[4]["need"]) <= 501
    assert "UTF-8" in errors[5]["error"] and errors[5]["need"] == "caf\ufffd au lait"
    assert "control characters" in errors[6]["error"]
    assert {record["need"] for record in records if "error" not in record} == {
        "something to dig food",
        "a quiet fan for my bedroom",
    }
    assert "Done: 2 needs answered, 4 errors" in result.stderr

    # Resume does not report the bad rows twice, and still says some rows failed.
    again = run(source, "--out", out, "-p", "0", "--resume")
    assert again.exit_code == 1
    assert len(read_jsonl(out)) == 6


def test_jsonl_input_with_bad_lines(tmp_path: Path, use_llm) -> None:
    source = tmp_path / "needs.jsonl"
    source.write_text(
        '{"need": "something to dig food", "id": 1}\n'
        '{"need": "something to dig food"\n'  # not JSON
        '["a list"]\n'
        '{"question": "no need field"}\n'
        '{"need": 42}\n'
        '{"need": "  a quiet   fan "}\n',
        encoding="utf-8",
    )
    out = tmp_path / "r.jsonl"
    result = run(source, "--out", out, "-p", "0")
    assert result.exit_code == 1
    records = read_jsonl(out)
    errors = {record["line"]: record["error"] for record in records if "error" in record}
    assert errors.keys() == {2, 3, 4, 5}
    assert "not valid JSON" in errors[2] and "JSON object" in errors[3]
    assert "no 'need' field" in errors[4] and "must be text" in errors[5]
    assert [record["need"] for record in records if "error" not in record] == [
        "something to dig food",
        "a quiet fan",
    ]


def test_csv_input_with_a_chosen_column(tmp_path: Path, use_llm) -> None:
    source = tmp_path / "needs.csv"
    source.write_text(
        'id,question\n1,something to dig food\n2,""\n3\n4,"a quiet fan, for my bedroom"\n', encoding="utf-8"
    )
    out = tmp_path / "r.jsonl"
    result = run(source, "--column", "question", "--out", out, "-p", "0")
    assert result.exit_code == 1, result.output
    records = read_jsonl(out)
    errors = {record["line"]: record["error"] for record in records if "error" in record}
    assert "empty" in errors[3] and "no 'question' value" in errors[4]
    assert [record["need"] for record in records if "error" not in record] == [
        "something to dig food",
        "a quiet fan, for my bedroom",
    ]

    missing = run(source, "--out", tmp_path / "other.jsonl")
    assert missing.exit_code == 2
    assert (
        "no 'need' column" in missing.stderr
        and "'question'" in missing.stderr
        and "--column" in missing.stderr
    )


def test_stdin_to_stdout(use_llm) -> None:
    result = run("-", "-p", "0", input="something to dig food\na quiet fan for my bedroom\n")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["need"] for record in records] == ["something to dig food", "a quiet fan for my bedroom"]
    assert "Done: 2 needs answered" in result.stderr

    as_jsonl = run("-", "-p", "0", input='{"need": "something to dig food"}\n')
    assert as_jsonl.exit_code == 0
    assert json.loads(as_jsonl.stdout)["need"] == "something to dig food"


def test_identical_needs_are_answered_once(tmp_path: Path, use_llm) -> None:
    state = use_llm()
    source = write_needs(
        tmp_path / "needs.txt", ["something to dig food", "something  to dig food ", "tent"] * 3
    )
    out = tmp_path / "r.jsonl"
    result = run(source, "--out", out, "-p", "0")
    assert result.exit_code == 0
    assert [record["need"] for record in read_jsonl(out)] == ["something to dig food", "tent"]
    assert sum("Need:" in prompt for prompt in state["llm"].prompts) == 2
    assert "7 duplicate rows answered once" in result.stderr


def test_csv_output_and_resume_of_a_cut_need(tmp_path: Path, use_llm) -> None:
    needs_file, out = write_needs(tmp_path / "needs.txt", NEEDS[:6] + [""] + ["\x01bad"]), tmp_path / "r.csv"
    assert run(needs_file, "--out", out, "-p", "0", "-k", "3").exit_code == 1
    import csv

    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    good = [row for row in rows if not row["error"]]
    assert [row["need"] for row in good if row["item"] == "1"] == NEEDS[:6]
    assert all(row["items"] == "2" and row["url"].startswith("https://www.amazon.com/s?k=") for row in good)
    assert [row["line"] for row in rows if row["error"]] == ["8"]

    # Killed after the first row of the last need was written: that need is answered again, whole.
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:-1]), encoding="utf-8")
    result = run(needs_file, "--out", out, "-p", "0", "-k", "3", "--resume")
    assert result.exit_code == 1, result.output
    assert "1 need answered" in result.stderr
    assert out.read_text(encoding="utf-8").splitlines(keepends=True) == lines


# --- exit code 2: bad arguments, before any model load ----------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "ebay"], "--backend must be one of"),
        (["--format", "xml"], "--format must be one of"),
        (["--paraphrases", "99"], "--paraphrases"),
        (["--resume"], "--resume needs --out"),
        (["--out", "r.txt"], "--out must end in .jsonl or .csv"),
        (["--out", "exists.jsonl"], "already exists: add --resume"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, use_llm, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists.jsonl").write_text('{"need": "x"}\n', encoding="utf-8")
    result = run(write_needs(tmp_path / "needs.txt"), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert use_llm()["builds"] == 0


def test_missing_input_exits_2(tmp_path: Path, use_llm) -> None:
    result = run(tmp_path / "nope.txt")
    assert result.exit_code == 2 and "input file not found" in result.stderr


def test_batch_cli_imports_no_heavy_library() -> None:
    heavy = "('torch', 'transformers', 'langchain_core')"
    code = f"import sys, agent.cli.batch; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_progress_bar_on_a_terminal() -> None:
    import io

    from rich.console import Console

    from agent.batch.progress import BarProgress, make_progress

    screen = io.StringIO()
    progress = make_progress(Console(file=screen, force_terminal=True, width=120))
    assert isinstance(progress, BarProgress)
    progress.start(50)
    progress.advance(16, 1)
    progress.close()
    assert "16/50" in screen.getvalue() and "needs/s" in screen.getvalue() and "ETA" in screen.getvalue()
