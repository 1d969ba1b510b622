"""``whazzat batch``: answer many needs from a file, crash-safe and resumable.

    whazzat batch needs.txt --out results.jsonl
    whazzat batch needs.csv --column question --out results.csv --paraphrases 2
    whazzat batch needs.txt --out results.jsonl --resume        # after Ctrl-C or a crash
    cat needs.txt | whazzat batch - > results.jsonl

Light to import (typer and settings only): the model, the chain and the readers load inside the command,
so ``whazzat --help`` stays instant. The engine is :mod:`agent.batch.runner`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli.options import AdapterOption, EndpointOption, ModelOption, NoAdapterOption
from agent.core.config import AMAZON_DOMAINS, BACKENDS, MAX_PARAPHRASES

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable
    from rich.console import Console

    from agent.batch.search import SharedSearch
    from agent.core.config import Settings


def batch(
    source: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="A text file (one need per line), a CSV or JSONL with a need column, or - for stdin.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Results file, .jsonl or .csv; JSONL on stdout when omitted."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue --out: skip the needs it already holds.")
    ] = False,
    paraphrases: Annotated[
        int | None,
        typer.Option(
            "--paraphrases", "-p", help=f"Rewrites of each need (0-{MAX_PARAPHRASES}); 0 is fastest."
        ),
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help=f"Where to find products: {', '.join(BACKENDS)}.")
    ] = None,
    domain: Annotated[
        str | None, typer.Option("--domain", help=f"Amazon marketplace: {', '.join(AMAZON_DOMAINS)}.")
    ] = None,
    top: Annotated[int | None, typer.Option("--top", "-k", help="Listings kept per need.")] = None,
    column: Annotated[
        str, typer.Option("--column", help="The CSV column or JSONL field that holds the need.")
    ] = "need",
    input_format: Annotated[
        str | None,
        typer.Option("--format", help="Input format: txt, csv or jsonl (default: from the file name)."),
    ] = None,
    chunk_size: Annotated[
        int,
        typer.Option(
            "--chunk-size",
            min=1,
            max=1024,
            help="Needs per model call and per write; larger batches the model better, smaller saves sooner.",
        ),
    ] = 16,
    model: ModelOption = None,
    adapter: AdapterOption = None,
    no_adapter: NoAdapterOption = False,
    llm_endpoint: EndpointOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary.")] = False,
) -> None:
    """Answer many needs from a file, writing each chunk's records as soon as it completes.

    Bad rows (empty, too long, not UTF-8) become error records and the batch goes on.

    \b
    Exit code: 0 all done, 1 some rows failed, 2 bad arguments, 130 stopped by Ctrl-C.
    Examples:
      whazzat batch needs.txt --out results.jsonl
      whazzat batch needs.csv --column question --out results.csv -p 2
      whazzat batch needs.txt --out results.jsonl --resume
      cat needs.txt | whazzat batch - > results.jsonl
    """
    from rich.console import Console

    from agent.batch.inputs import INPUT_FORMATS, BatchInputError, read_input
    from agent.batch.outputs import BatchOutputError, open_output
    from agent.batch.progress import make_progress, print_summary
    from agent.batch.runner import StopSignal, run_batch
    from agent.cli.common import fail, make_settings
    from agent.core.errors import WhazzatError

    for value, choices, flag in (
        (backend, BACKENDS, "--backend"),
        (domain, AMAZON_DOMAINS, "--domain"),
        (input_format, INPUT_FORMATS, "--format"),
    ):
        if value is not None and value not in choices:
            fail(f"{flag} must be one of {', '.join(choices)} (got {value!r})")
    settings = make_settings(
        paraphrases=paraphrases,
        backend=backend,
        domain=domain,
        top_k=top,
        model=model,
        adapter=adapter,
        no_adapter=no_adapter or None,
        llm_endpoint=llm_endpoint,
    )
    if settings.llm_endpoint:
        from agent.models.endpoint import EndpointError, normalize_endpoint

        try:
            normalize_endpoint(settings.llm_endpoint)
        except EndpointError as error:
            fail(str(error))
    try:
        rows = read_input(source, column=column, input_format=input_format)
        writer, done = open_output(out, resume=resume)
    except (BatchInputError, BatchOutputError) as error:
        fail(str(error))

    console = Console(stderr=True, quiet=quiet)
    started = time.perf_counter()
    try:
        chain, search = _build_chain(settings, console)
    except (WhazzatError, ValueError) as error:  # a model that does not load, a bad catalog ...
        fail(str(error))

    def on_stop() -> None:
        console.print("Stopping after the current chunk (Ctrl-C again to stop now)...", highlight=False)

    try:
        summary = run_batch(
            rows,
            chain,
            writer,
            chunk_size=chunk_size,
            done=done,
            progress=make_progress(console, quiet=quiet),
            search=search,
            stop=StopSignal(on_request=on_stop),
        )
    except BatchOutputError as error:  # the disk filled up, the file vanished ...
        fail(str(error))
    summary.setup_seconds = round(time.perf_counter() - started - summary.wall_seconds, 3)
    print_summary(console, summary, str(out) if out else "stdout")
    raise typer.Exit(summary.exit_code)


def _build_chain(settings: Settings, console: Console) -> tuple[Runnable[Any, Any], SharedSearch]:
    """The chain on a :class:`~agent.batch.search.SharedSearch` over the configured backend."""
    from agent.batch.search import SharedSearch
    from agent.cli.common import quiet_libraries
    from agent.pipeline.chain import build_chain
    from tools.registry import make_backend

    quiet_libraries()
    search = SharedSearch(make_backend(settings), concurrency=settings.search_concurrency)
    with console.status("Loading the model..."):
        chain = build_chain(settings, backend=search)
    return chain, search
