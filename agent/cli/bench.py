"""``whazzat bench``: the original project's way of working against Whazzat's, on the same needs.

    whazzat bench                                   # 30 needs of the test split, a table
    whazzat bench --n 100 --json --out bench.json   # one JSON object on stdout (and in bench.json)
    whazzat bench --set quantize=int8 --set rewrite_strategy=parallel    # measure levers
    whazzat bench --set quantize=int8 --quality --compare-set quantize=none   # and their quality
    whazzat bench --compare-set memory_mode=model    # the default's latency against the model alone
    whazzat bench --skip load --skip rss --delay 0.2                     # a quicker partial run
    whazzat bench --batch-n 100 --workers 2     # batch throughput, in-process and with 2 worker processes
    whazzat bench --llamacpp-source llama_cpp_python-0.3.36.tar.gz   # the llama.cpp peer with the adapter
    whazzat bench-levers --lever int8 --lever int8-static-cache         # decode rate per lever

Light to import (typer and pydantic only): torch and the models load inside the commands. Register with
``app.command("bench")(bench)`` and ``app.command("bench-levers")(levers)``; ``python -m agent bench``
runs it without the console script.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.bench.decode_levers import LEVERS
from agent.cli.batch import MAX_WORKERS
from agent.cli.common import fail, quiet_libraries

SKIP_CHOICES = ("load", "cli", "rss", "axesso", "decode", "llamacpp", "workers")


def parse_assignments(pairs: list[str], flag: str) -> dict[str, Any]:
    """``["quantize=int8", "paraphrases=2"]`` -> a dict of Settings fields, checked against Settings."""
    from agent.core.config import Settings

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            fail(f"{flag} takes KEY=VALUE (got {pair!r})")
        if key not in Settings.model_fields or key == "rapidapi_key":
            fail(f"{flag}: {key!r} is not a setting; see agent/core/config.py for the names")
        values[key] = value.strip()
    return values


def _check_settings(overrides: dict[str, Any], flag: str) -> None:
    from pydantic import ValidationError

    from agent.core.config import get_settings

    try:
        get_settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        fail(
            f"{flag} {first['loc'][0] if first['loc'] else ''}: {first['msg']} (got {first.get('input')!r})"
        )


def _command_line(given: dict[str, Any]) -> str:
    """The command as a user would type it, rebuilt from the options (reported with the figures)."""
    words = ["whazzat", "bench"]
    for name, flag in (
        ("needs", "--needs"),
        ("model", "--model"),
        ("adapter", "--adapter"),
        ("out", "--out"),
        ("batch_n", "--batch-n"),
        ("llamacpp_source", "--llamacpp-source"),
    ):
        if given.get(name) is not None:
            words += [flag, str(given[name])]
    for name, flag, default in (
        ("n", "--n", 30),
        ("delay", "--delay", 1.0),
        ("decode_tokens", "--decode-tokens", 64),
        ("bandwidth_mb", "--bandwidth-mb", 512),
        ("cli_repeats", "--cli-repeats", 3),
        ("workers", "--workers", 2),
    ):
        if given[name] != default:
            words += [flag, f"{given[name]:g}" if isinstance(given[name], float) else str(given[name])]
    for name, flag in (("set_", "--set"), ("compare_set", "--compare-set"), ("skip", "--skip")):
        for value in given.get(name) or []:
            words += [flag, value]
    words += [
        flag
        for name, flag in (
            ("no_adapter", "--no-adapter"),
            ("quality", "--quality"),
            ("json_output", "--json"),
        )
        if given.get(name)
    ]
    return shlex.join(words)


def bench(
    needs: Annotated[
        Path | None,
        typer.Option(
            "--needs",
            help="Needs to answer: JSONL with a 'need' field, or text (one per line). "
            "Default: the project's test split, finetune/data/test.jsonl.",
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Answer the first N needs of the file.")] = 30,
    batch_n: Annotated[
        int | None,
        typer.Option(
            "--batch-n",
            min=1,
            help="Needs in Whazzat's batch-mode throughput runs (the first N of the file); default: --n. "
            "The baseline has no batch mode, so --batch-n 100 costs no extra baseline answers.",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout, nothing else.")
    ] = False,
    delay: Annotated[
        float,
        typer.Option("--delay", min=0, help="Seconds the local fake Axesso API waits before each answer."),
    ] = 1.0,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON result to this file.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=VALUE setting of the whazzat side, repeatable, e.g. quantize=int8, "
            "rewrite_strategy=parallel, torch_threads=2. paraphrases and model apply to both sides.",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="A model directory or id instead of the embedded one.")
    ] = None,
    adapter: Annotated[
        str | None, typer.Option("--adapter", help="A LoRA adapter directory (both sides).")
    ] = None,
    no_adapter: Annotated[bool, typer.Option("--no-adapter", help="Both sides without any adapter.")] = False,
    quality: Annotated[
        bool,
        typer.Option(
            "--quality",
            help="Also score hit@5 / precision@5 of the whazzat settings and of "
            "the --compare-set reference on the same needs (needs gold products).",
        ),
    ] = False,
    compare_set: Annotated[
        list[str] | None,
        typer.Option(
            "--compare-set",
            help="KEY=VALUE of a reference, on top of --set (repeatable): its links latency is timed "
            "right after whazzat's (a table row, 'reference' in the JSON); implies --quality.",
        ),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", help=f"Leave out a measurement (repeatable): {', '.join(SKIP_CHOICES)}."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            max=MAX_WORKERS,
            help="Also time the real `whazzat batch --workers N` over the --batch-n needs, in a fresh "
            "process with the whazzat settings, links backend, answer cache off (every answer generated). "
            "Its needs/s is a user's: the wall time counts process start, imports and each worker's model "
            "load, not only the answers, so it gains on the in-process row only when the batch is large "
            "enough to pay for them. 0 (or --skip workers) leaves it out.",
        ),
    ] = 2,
    decode_tokens: Annotated[
        int, typer.Option("--decode-tokens", min=2, max=1024, help="New tokens per decode-rate run.")
    ] = 64,
    bandwidth_mb: Annotated[
        int, typer.Option("--bandwidth-mb", min=1, help="Array size of the memory-bandwidth copy.")
    ] = 512,
    cli_repeats: Annotated[
        int, typer.Option("--cli-repeats", min=1, help="CLI start time is the best of this many runs.")
    ] = 3,
    llamacpp_source: Annotated[
        Path | None,
        typer.Option(
            "--llamacpp-source",
            help="A llama.cpp checkout or a llama-cpp-python sdist (.tar.gz): its convert_lora_to_gguf.py "
            "converts the adapter for the llama.cpp peer, once (cached under WHAZZAT_HOME). Without one "
            "and no cached conversion, the peer runs on the base weights and says so.",
        ),
    ] = None,
) -> None:
    """Benchmark Whazzat against the original project's way of working, on the same needs, warm.

    Reports p50/p95 latency per need (links and a local Axesso with an injected delay), needs/s in batch
    mode, batch-1 decode tokens/s against the memory-bandwidth bound, model load time (cold from GGUF,
    warm), CLI start time, peak RSS, and the speed-up of each. Progress goes to stderr. When
    llama-cpp-python is installed (the llamacpp extra), also a llama.cpp peer: Whazzat's chain with
    llama.cpp generating on the shipped GGUF, its s/need and decode tokens/s beside Whazzat's. With
    --workers N (2 by default), also needs/s of `whazzat batch --workers N` run as a user runs it.
    """
    from pydantic import ValidationError

    unknown = sorted(set(skip or []) - set(SKIP_CHOICES))
    if unknown:
        fail(f"--skip takes {', '.join(SKIP_CHOICES)} (got {', '.join(unknown)})")
    overrides = parse_assignments(set_ or [], "--set")
    for key, value in (("model", model), ("adapter", adapter), ("no_adapter", no_adapter or None)):
        if value is not None:
            overrides[key] = value
    compare = parse_assignments(compare_set or [], "--compare-set")
    _check_settings(overrides, "--set")
    _check_settings({**overrides, **compare}, "--compare-set")
    if needs is not None and not needs.is_file():
        fail(f"--needs: no such file {needs}")
    if llamacpp_source is not None and not llamacpp_source.exists():
        fail(f"--llamacpp-source: no such file or folder {llamacpp_source}")

    from rich.console import Console

    from agent.bench.figures import print_table
    from agent.bench.runner import BenchError, BenchOptions, run_bench
    from agent.core.errors import WhazzatError

    quiet_libraries()
    console = Console(stderr=True)
    started = time.perf_counter()

    def say(message: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:6.1f}s[/dim] {message}", highlight=False)

    try:
        options = BenchOptions(
            needs_file=needs,
            n=n,
            batch_n=batch_n,
            delay_s=delay,
            overrides=overrides,
            quality=quality or bool(compare),
            compare_overrides=compare,
            skip=skip or [],
            decode_tokens=decode_tokens,
            bandwidth_mb=bandwidth_mb,
            cli_repeats=cli_repeats,
            workers=workers,
            llamacpp_source=llamacpp_source,
            command=_command_line(locals()),
        )
        result = run_bench(options, say)
    except (BenchError, WhazzatError, ValidationError) as error:
        fail(str(error))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if json_output:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        print_table(result)


def levers(
    lever: Annotated[
        list[str] | None,
        typer.Option("--lever", help=f"Repeatable; default: all of {', '.join(sorted(LEVERS))}."),
    ] = None,
    new_tokens: Annotated[
        int, typer.Option("--new-tokens", min=2, help="New tokens per decode-rate run.")
    ] = 64,
    bandwidth_mb: Annotated[
        int, typer.Option("--bandwidth-mb", min=1, help="Array size of the memory-bandwidth copy.")
    ] = 512,
) -> None:
    """Batch-1 decode rate of the embedded model under each decode lever, against the bandwidth bound.

    One fresh model per lever, a JSON line each on stdout after the bandwidth. Run it on a quiet machine.

    \b
    Examples:
      whazzat bench-levers
      whazzat bench-levers --lever int8 --lever int8-static-cache
    """
    unknown = sorted(set(lever or []) - set(LEVERS))
    if unknown:
        fail(f"--lever must be one of {', '.join(sorted(LEVERS))} (got {', '.join(unknown)})")

    from agent.bench.decode_levers import run_levers

    quiet_libraries()
    run_levers(lever, new_tokens, bandwidth_mb)
