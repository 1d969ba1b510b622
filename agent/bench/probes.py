"""Measurements that are only honest in a fresh process: model load time, CLI start time, peak RSS.

The children are this module's entry points and the real ``whazzat`` CLI:

    python -m agent.bench.probes load --pipeline whazzat --settings '{"quantize": "int8"}'
    python -m agent.bench.probes ask --pipeline baseline --need "something to dig food"

Peak RSS is read by the child itself at exit (``VmHWM``, the high-water mark of its own memory map) and
written to a file the bench names. Not ``ru_maxrss`` from ``wait4``: Linux carries the parent's peak over
fork and exec into it, so every child would report at least the bench's own size.

Settings travel as a JSON object of overrides (the bench's ``--set`` values), never the RapidAPI key.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer
from pydantic import BaseModel

from agent.core.errors import WhazzatError

Pipeline = Literal["whazzat", "baseline"]

#: What a CLI that imports its heavy libraries at module level pays before printing ``--help``: the
#: original project imported torch, transformers and peft at the top of its only script.
EAGER_IMPORTS = "import torch, transformers, peft, langchain_huggingface"
#: Where a child writes its peak RSS in bytes when it exits (set by :func:`run_measured`).
PEAK_RSS_FILE_ENV = "WHAZZAT_BENCH_PEAK_RSS_FILE"
#: Runs the real ``whazzat`` CLI with the exit hook that reports peak RSS.
_CLI_WITH_RSS_HOOK = (
    "import atexit; from agent.bench.probes import report_peak_rss; atexit.register(report_peak_rss); "
    "from agent.cli.main import app; app()"
)


class ProcessRun(BaseModel):
    """A finished child process: exit status, output, wall time, and its peak RSS when it reported one."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_mb: float | None


class ProbeError(WhazzatError, RuntimeError):
    """A child process failed; the message carries the end of its stderr."""


def own_peak_rss_bytes() -> int:
    """This process's peak RSS: ``VmHWM`` of its memory map where /proc has it, else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB


def report_peak_rss() -> None:
    """An exit hook for children: write this process's peak RSS where the bench asked, if it asked."""
    path = os.environ.get(PEAK_RSS_FILE_ENV)
    if path:
        Path(path).write_text(str(own_peak_rss_bytes()), encoding="ascii")


def child_env(overrides: Mapping[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """This process's environment, quiet libraries, and ``overrides`` as ``WHAZZAT_<FIELD>`` variables."""
    env = dict(os.environ)
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        env[f"WHAZZAT_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update(extra)
    return env


def run_measured(
    command: list[str], env: Mapping[str, str] | None = None, timeout_s: float = 1800
) -> ProcessRun:
    """Run ``command`` to the end: its output, wall time and (if it reports it) its peak RSS."""
    with tempfile.TemporaryDirectory(prefix="whazzat-bench-probe-") as scratch:
        rss_file = Path(scratch) / "peak-rss"
        child = {**(env if env is not None else os.environ), PEAK_RSS_FILE_ENV: str(rss_file)}
        started = time.perf_counter()
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=child,
            timeout=timeout_s,
            check=False,
        )
        wall = time.perf_counter() - started
        peak = int(rss_file.read_text(encoding="ascii")) if rss_file.is_file() else None
    return ProcessRun(
        returncode=done.returncode,
        stdout=done.stdout,
        stderr=done.stderr,
        wall_s=wall,
        peak_rss_mb=None if peak is None else round(peak / 1e6, 1),
    )


def _checked(run: ProcessRun, what: str) -> ProcessRun:
    if run.returncode != 0:
        raise ProbeError(f"{what} failed (exit {run.returncode}): {run.stderr.strip()[-800:]}")
    return run


def _last_json_line(text: str) -> dict[str, Any]:
    return json.loads(text.strip().splitlines()[-1])


def cli_help_seconds(pipeline: Pipeline, repeats: int = 3) -> float:
    """Best wall time of a fresh interpreter printing ``whazzat --help``.

    Whazzat's CLI imports heavy libraries inside its commands; the baseline's imports them first, as a
    CLI that imports everything at module level would. Both start the same interpreter directly (no
    console-script shim), so only the imports differ.
    """
    script = "from agent.cli.main import app; app()"
    if pipeline == "baseline":
        script = f"{EAGER_IMPORTS}; {script}"
    command = [sys.executable, "-c", script, "--help"]
    return min(_checked(run_measured(command, child_env()), "whazzat --help").wall_s for _ in range(repeats))


def load_seconds(pipeline: Pipeline, overrides: Mapping[str, Any], home: str | None = None) -> float:
    """Seconds a fresh process takes to load the pipeline's model (imports excluded).

    ``home`` sets ``WHAZZAT_HOME``: an empty directory makes the embedded model convert from GGUF (cold).
    """
    settings = {**overrides, "home": home} if home else dict(overrides)
    command = [
        sys.executable,
        "-m",
        "agent.bench.probes",
        "load",
        "--pipeline",
        pipeline,
        "--settings",
        json.dumps(settings),
    ]
    run = _checked(run_measured(command, child_env()), f"loading the {pipeline} model")
    return float(_last_json_line(run.stdout)["seconds"])


def ask_peak_rss_mb(pipeline: Pipeline, overrides: Mapping[str, Any], need: str, paraphrases: int) -> float:
    """Peak RSS (MB) of a fresh process that loads the pipeline and answers ``need`` with search links.

    Whazzat's is the real ``whazzat ask`` command (``--paraphrases`` is a flag there, and a flag wins over
    the environment); the baseline's is this module's ``ask`` entry point.
    """
    if pipeline == "whazzat":
        settings = {key: value for key, value in overrides.items() if key != "paraphrases"}
        command = [
            sys.executable,
            "-c",
            _CLI_WITH_RSS_HOOK,
            "ask",
            need,
            "--json",
            "--paraphrases",
            str(paraphrases),
        ]
        env = child_env(settings)
    else:
        command = [
            sys.executable,
            "-m",
            "agent.bench.probes",
            "ask",
            "--pipeline",
            "baseline",
            "--need",
            need,
            "--settings",
            json.dumps(dict(overrides)),
        ]
        env = child_env()
    run = _checked(run_measured(command, env), f"answering a need with the {pipeline} pipeline")
    if run.peak_rss_mb is None:
        raise ProbeError(f"the {pipeline} child process did not report its peak RSS")
    return run.peak_rss_mb


# --- entry points of the child processes -------------------------------------------------------------
def _load(pipeline: Pipeline, overrides: dict[str, Any]) -> float:
    # Imported before the clock starts: load time is the load alone (CLI start time covers imports).
    import langchain_huggingface  # noqa: F401
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from agent.core.config import get_settings

    settings = get_settings(**overrides)
    started = time.perf_counter()
    if pipeline == "whazzat":
        from agent.models.llm import load_llm

        load_llm(settings)
    else:
        from agent.bench.baseline import load_baseline_model

        load_baseline_model(settings)
    return time.perf_counter() - started


#: The children's command line (this layer sits below ``agent.cli``, so it has its own app).
app = typer.Typer(
    help="Bench probes run in a fresh process.", add_completion=False, pretty_exceptions_enable=False
)
PipelineOption = Annotated[Pipeline, typer.Option("--pipeline", help="Whose model: whazzat or baseline.")]
SettingsOption = Annotated[str, typer.Option("--settings", help="JSON object of settings overrides.")]


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit code 2, as ``agent.cli.common.fail`` (a layer above, so not imported)."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def _overrides(settings: str) -> dict[str, Any]:
    try:
        overrides = json.loads(settings)
    except ValueError as error:
        _fail(f"--settings is not JSON: {error}")
    if not isinstance(overrides, dict):
        _fail(f"--settings must be a JSON object of settings (got {settings!r})")
    return overrides


@app.command()
def load(pipeline: PipelineOption, settings: SettingsOption = "{}") -> None:
    """Load the pipeline's model; print ``{"seconds": ...}`` (imports excluded)."""
    overrides = _overrides(settings)
    sys.stdout.write(json.dumps({"seconds": _load(pipeline, overrides)}) + "\n")


@app.command()
def ask(
    pipeline: PipelineOption,
    settings: SettingsOption = "{}",
    need: Annotated[str, typer.Option("--need", help="The need to answer.")] = "something to dig food",
) -> None:
    """Answer one need with the baseline, print its result as JSON, and report peak RSS at exit."""
    if pipeline != "baseline":
        _fail("ask runs the baseline only (--pipeline baseline); whazzat's is the real `whazzat ask`")
    overrides = _overrides(settings)
    atexit.register(report_peak_rss)
    from agent.bench.baseline import BaselinePipeline
    from agent.core.config import get_settings

    result = BaselinePipeline.load(get_settings(**overrides)).answer(need)
    sys.stdout.write(result.model_dump_json() + "\n")


def main() -> None:
    """``python -m agent.bench.probes load|ask ...``, as the bench runs it in a child process."""
    app()


if __name__ == "__main__":
    main()
