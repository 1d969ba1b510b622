"""``whazzat batch --workers N`` on a fake model: the same records in input order as one process, nothing
lost when a worker dies, Ctrl-C and kill -9 of the batch, and a model that does not load.

Workers are spawned processes: they build their chain with :func:`fake_chain` (imported by name, so it is
module-level) and learn what the test wants of them from ``WHAZZAT_TEST_*`` variables, which a spawned
process inherits. The search stays in the test's process, as it does in the parent.
"""

from __future__ import annotations

import os
import re
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import Runnable

import agent.cli.batch
from agent.core.config import Settings
from agent.core.errors import ModelLoadError
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM
from tests.test_batch import NEEDS, ROOT, fake_llm_for, kill_9_after, read_jsonl, run, write_needs
from tools.base import SearchBackend

WORK = NEEDS[:24]  # 6 chunks of 4
STATE = "WHAZZAT_TEST_STATE"  # a folder: worker-<pid> per worker started, calls (one pid per generate call)
WAIT_FOR_WORKERS = "WHAZZAT_TEST_WAIT_FOR_WORKERS"  # generate waits until this many workers started
SLOW_NEED = "WHAZZAT_TEST_SLOW_NEED"  # generate sleeps a second for this need's prompts
SLEEP = "WHAZZAT_TEST_SLEEP"  # seconds every generate call sleeps
MARK = "WHAZZAT_TEST_MARK"  # the need whose prompts trigger ACTION
ACTION = "WHAZZAT_TEST_ACTION"  # "die": SIGKILL itself (DEATHS times in all); "interrupt": SIGINT the parent
DEATHS = "WHAZZAT_TEST_DEATHS"
FAIL_LOAD = "WHAZZAT_TEST_FAIL_LOAD"


def _asks(prompts: list[str], need: str) -> bool:
    return any(re.search(rf"(?im)need: {re.escape(need)}\s*$", prompt) for prompt in prompts)


class WorkerLLM(FakeWhazzatLLM):
    """The fake model, doing in the worker process what the test's variables ask."""

    def _generate(self, prompts: list[str], *args: Any, **kwargs: Any):
        state = Path(os.environ[STATE])
        with (state / "calls").open("a", encoding="utf-8") as calls:
            calls.write(f"{os.getpid()}\n")
        deadline = time.monotonic() + 60
        while len(list(state.glob("worker-*"))) < int(os.environ.get(WAIT_FOR_WORKERS, "0")):
            assert time.monotonic() < deadline, "the other workers never started"
            time.sleep(0.05)
        time.sleep(float(os.environ.get(SLEEP, "0")))
        if os.environ.get(SLOW_NEED) and _asks(prompts, os.environ[SLOW_NEED]):
            time.sleep(1.0)
        if os.environ.get(MARK) and _asks(prompts, os.environ[MARK]):
            if os.environ[ACTION] == "die":
                if len(list(state.glob("died-*"))) < int(os.environ.get(DEATHS, "1")):
                    (state / f"died-{os.getpid()}").touch()
                    os.kill(os.getpid(), signal.SIGKILL)
            elif os.environ[ACTION] == "interrupt" and not (state / "interrupted").exists():
                (state / "interrupted").touch()
                os.kill(os.getppid(), signal.SIGINT)  # like Ctrl-C: the batch, not this worker
        return super()._generate(prompts, *args, **kwargs)


def fake_chain(settings: Settings, search: SearchBackend) -> Runnable[Any, Any]:
    """The batch's chain factory in these tests: the fake model, the search given, no MiniLM."""
    import agent.pipeline.chain

    (Path(os.environ[STATE]) / f"worker-{os.getpid()}").touch()
    if os.environ.get(FAIL_LOAD):
        raise ModelLoadError("no model at /nowhere/model (a test); pass --model with a model that exists")
    llm = fake_llm_for(NEEDS, WorkerLLM)
    return agent.pipeline.chain.build_chain(settings, llm=llm, backend=search, similarity=exact_similarity)


@pytest.fixture
def workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The batch on :func:`fake_chain`; returns the state folder and a setter for the workers' variables."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv(STATE, str(state))
    monkeypatch.setattr(agent.cli.batch, "chain_factory", fake_chain)

    def set_env(**variables: object) -> Path:
        for name, value in variables.items():
            monkeypatch.setenv(name, str(value))
        return state

    return set_env


def needs_of(path: Path) -> list[str]:
    return [record["need"] for record in read_jsonl(path)]


def without_timings(records: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "timings"} for record in records]


def worker_pids(state: Path) -> set[int]:
    return {int(path.name.split("-")[1]) for path in state.glob("worker-*")}


def gone(pid: int) -> bool:
    """Whether the process has exited (a zombie nobody reaped counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" in status


def test_two_workers_write_the_same_records_as_one_process(tmp_path: Path, workers) -> None:
    state = workers()
    needs_file = write_needs(tmp_path / "needs.txt", WORK)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    alone = run(needs_file, "--out", one, "-p", "2", "--chunk-size", "4")
    assert alone.exit_code == 0, alone.output
    for path in state.iterdir():  # what this process left there
        path.unlink()

    # Both workers answer, and the first chunk comes back last: it must still be written first.
    workers(**{WAIT_FOR_WORKERS: 2, SLOW_NEED: WORK[0]})
    together = run(needs_file, "--out", two, "-p", "2", "--chunk-size", "4", "--workers", "2")
    assert together.exit_code == 0, together.output

    assert needs_of(two) == WORK
    assert without_timings(read_jsonl(two)) == without_timings(read_jsonl(one))
    assert len(set((state / "calls").read_text().split())) == 2  # two processes generated
    assert "Done: 24 needs answered, 0 errors" in together.stderr
    assert "Workers: 2 processes" in together.stderr and "lost" not in together.stderr
    assert "batch: 24/24 needs (100%)" in together.stderr  # the progress lines
    assert all(gone(pid) for pid in worker_pids(state))  # no worker outlives the batch


def test_a_killed_worker_loses_nothing(tmp_path: Path, workers) -> None:
    """SIGKILL of the worker answering chunk 3: another worker answers it again, in its place."""
    workers(**{MARK: WORK[9], ACTION: "die", DEATHS: 1})
    needs_file, out = write_needs(tmp_path / "needs.txt", WORK), tmp_path / "r.jsonl"

    result = run(needs_file, "--out", out, "-p", "0", "--chunk-size", "4", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert needs_of(out) == WORK  # in input order, each once
    assert "Done: 24 needs answered, 0 errors" in result.stderr
    assert "1 lost (killed by SIGKILL" in result.stderr and "1 chunk answered again" in result.stderr
    assert "Traceback" not in result.output

    again = run(needs_file, "--out", out, "-p", "0", "--chunk-size", "4", "--workers", "2", "--resume")
    assert again.exit_code == 0, again.output
    assert "24 already in" in again.stderr and needs_of(out) == WORK


def test_a_chunk_whose_worker_dies_twice_fails_and_resume_answers_it(tmp_path: Path, workers) -> None:
    state = workers(**{MARK: WORK[9], ACTION: "die", DEATHS: 2})
    needs_file, out = write_needs(tmp_path / "needs.txt", WORK), tmp_path / "r.jsonl"

    result = run(needs_file, "--out", out, "-p", "0", "--chunk-size", "4", "--workers", "2")
    assert result.exit_code == 1, result.output
    records = read_jsonl(out)
    assert [record["need"] for record in records] == WORK  # the others answered, in input order
    failed = [record for record in records if "error" in record]
    assert [record["need"] for record in failed] == WORK[8:12]
    assert all("died twice (killed by SIGKILL" in record["error"] and "--resume" in record["error"]
               for record in failed)
    assert [record["line"] for record in failed] == [9, 10, 11, 12]
    assert "Done: 20 needs answered, 4 errors" in result.stderr and "2 lost" in result.stderr
    assert "Traceback" not in result.output
    assert len(list(state.glob("died-*"))) == 2

    workers(**{MARK: ""})
    resumed = run(needs_file, "--out", out, "-p", "0", "--chunk-size", "4", "--workers", "2", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "4 needs answered" in resumed.stderr and "20 already in" in resumed.stderr
    answered = [record["need"] for record in read_jsonl(out) if "error" not in record]
    assert answered == WORK[:8] + WORK[12:] + WORK[8:12]  # each need answered once, none redone


def test_ctrl_c_waits_for_the_chunks_in_flight_and_resume_finishes(tmp_path: Path, workers) -> None:
    state = workers(**{MARK: WORK[9], ACTION: "interrupt"})
    needs_file, out = write_needs(tmp_path / "needs.txt", WORK), tmp_path / "r.jsonl"

    stopped = run(needs_file, "--out", out, "-p", "0", "--chunk-size", "4", "--workers", "2")
    assert stopped.exit_code == 130, stopped.output
    assert "Stopping after the chunks in flight" in stopped.stderr and "--resume" in stopped.stderr
    done = needs_of(out)
    # The chunk that was answering when Ctrl-C came (WORK[8:12]) and all before it are written; no new
    # chunk was handed out after it.
    assert done == WORK[: len(done)] and len(done) % 4 == 0 and 12 <= len(done) < len(WORK)
    assert all(gone(pid) for pid in worker_pids(state))

    resumed = run(needs_file, "--out", out, "-p", "0", "--chunk-size", "4", "--workers", "2", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert needs_of(out) == WORK and f"{len(done)} already in" in resumed.stderr


def test_a_model_that_does_not_load_exits_2_without_a_traceback(tmp_path: Path, workers) -> None:
    state = workers(**{FAIL_LOAD: 1})
    out = tmp_path / "r.jsonl"
    result = run(write_needs(tmp_path / "needs.txt", WORK), "--out", out, "--workers", "2")
    assert result.exit_code == 2
    assert "no model at /nowhere/model" in result.stderr and "Traceback" not in result.output
    assert not out.exists()
    assert len(worker_pids(state)) == 1  # the others were never started


def test_kill_9_of_the_batch_stops_its_workers_and_resume_finishes(tmp_path: Path, workers) -> None:
    state = workers(**{SLEEP: 0.3})
    needs_file, out = write_needs(tmp_path / "needs.txt", WORK), tmp_path / "r.jsonl"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import typer
        import agent.cli.batch
        from tests.test_batch_workers import fake_chain

        agent.cli.batch.chain_factory = fake_chain
        typer.run(agent.cli.batch.batch)
    """)
    args = [needs_file, "--out", out, "-p", "0", "--chunk-size", "2", "--workers", "2", "-q"]
    kill_9_after(script, args, out, lines=6)
    done = needs_of(out)
    assert 6 <= len(done) < len(WORK) and done == WORK[: len(done)]

    # Orphaned, each worker leaves once its pipe to the batch is gone (at most a chunk later).
    deadline = time.monotonic() + 20
    while not all(gone(pid) for pid in worker_pids(state)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker_pids(state) and all(gone(pid) for pid in worker_pids(state))

    workers(**{SLEEP: 0})
    resumed = run(needs_file, "--out", out, "-p", "0", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert needs_of(out) == WORK and f"{len(done)} already in" in resumed.stderr
