"""Measurements that are only honest in a fresh process: model load time, CLI start time, peak RSS.

Each runs a child process and reads its own resource usage from ``os.wait4`` (peak RSS of that child
alone, not of the bench). The children are this module's entry points and the real ``whazzat`` CLI:

    python -m agent.bench.probes load --pipeline whazzat --settings '{"quantize": "int8"}'
    python -m agent.bench.probes ask --pipeline baseline --need "something to dig food"

Settings travel as a JSON object of overrides (the bench's ``--set`` values), never the RapidAPI key.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

Pipeline = Literal["whazzat", "baseline"]

#: What a CLI that imports its heavy libraries at module level pays before printing ``--help``: the
#: original project imported torch, transformers and peft at the top of its only script.
EAGER_IMPORTS = "import torch, transformers, peft, langchain_huggingface"


class ProcessRun(BaseModel):
    """A finished child process: exit status, output, wall time and its own peak RSS."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_mb: float


class ProbeError(RuntimeError):
    """A child process failed; the message carries the end of its stderr."""


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
    command: list[str], env: Mapping[str, str] | None = None, timeout_s: float = 900
) -> ProcessRun:
    """Run ``command`` to the end and measure it; killed after ``timeout_s``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
        )
        watchdog = threading.Timer(timeout_s, process.kill)
        watchdog.start()
        try:
            # wait4, not wait: it returns this child's own rusage (ru_maxrss = its peak RSS).
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        # Linux reports ru_maxrss in KiB, macOS in bytes.
        rss_bytes = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
        return ProcessRun(
            returncode=process.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            wall_s=wall,
            peak_rss_mb=round(rss_bytes / 1e6, 1),
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
    script = "from agent.cli import app; app()"
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


def ask_peak_rss_mb(pipeline: Pipeline, overrides: Mapping[str, Any], need: str) -> float:
    """Peak RSS (MB) of a fresh process that loads the pipeline and answers ``need`` with search links.

    Whazzat's is the real ``whazzat ask`` command; the baseline's is this module's ``ask`` entry point.
    """
    if pipeline == "whazzat":
        settings = {key: value for key, value in overrides.items() if key != "paraphrases"}
        paraphrases = str(overrides.get("paraphrases", 4))
        command = [
            sys.executable,
            "-c",
            "from agent.cli import app; app()",
            "ask",
            need,
            "--json",
            "--paraphrases",
            paraphrases,
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
    return _checked(run_measured(command, env), f"answering a need with the {pipeline} pipeline").peak_rss_mb


# --- entry points of the child processes -------------------------------------------------------------
def _load(pipeline: Pipeline, overrides: dict[str, Any]) -> float:
    # Imported before the clock starts: load time is the load alone (CLI start time covers imports).
    import langchain_huggingface  # noqa: F401
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from agent.config import get_settings

    settings = get_settings(**overrides)
    started = time.perf_counter()
    if pipeline == "whazzat":
        from agent.llm import load_llm

        load_llm(settings)
    else:
        from agent.bench.baseline import load_baseline_model

        load_baseline_model(settings)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Bench probes run in a fresh process.")
    parser.add_argument("probe", choices=["load", "ask"])
    parser.add_argument("--pipeline", choices=["whazzat", "baseline"], required=True)
    parser.add_argument("--settings", default="{}", help="JSON object of settings overrides.")
    parser.add_argument("--need", default="something to dig food")
    args = parser.parse_args(argv)
    overrides = json.loads(args.settings)
    if args.probe == "load":
        sys.stdout.write(json.dumps({"seconds": _load(args.pipeline, overrides)}) + "\n")
        return
    if args.pipeline != "baseline":
        parser.error("ask runs the baseline only; whazzat's is the real `whazzat ask`")
    from agent.bench.baseline import BaselinePipeline
    from agent.config import get_settings

    result = BaselinePipeline.load(get_settings(**overrides)).answer(args.need)
    sys.stdout.write(result.model_dump_json() + "\n")


if __name__ == "__main__":
    main()
