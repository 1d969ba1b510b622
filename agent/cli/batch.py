"""``whazzat batch``: answer many needs from a file, crash-safe and resumable.

    whazzat batch needs.txt --out results.jsonl
    whazzat batch needs.csv --column question --out results.csv --paraphrases 2
    whazzat batch needs.txt --out results.jsonl --resume        # after Ctrl-C or a crash
    whazzat batch needs.txt --out results.jsonl --workers 2     # two model processes, on 2+ cores
    cat needs.txt | whazzat batch - > results.jsonl

Light to import (typer and settings only): the model, the chain and the readers load inside the command,
so ``whazzat --help`` stays instant, and a ``--workers`` process that imports :func:`chain_factory` by name
starts quickly. The engine is :mod:`agent.batch.runner`, its processes :mod:`agent.batch.workers`.
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
    from agent.batch.workers import WorkerPool
    from agent.core.config import Settings
    from tools.base import SearchBackend

MAX_WORKERS = 32


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
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=MAX_WORKERS,
            help="Model processes answering chunks side by side, each with one torch thread and its own "
            "copy of the model (about 1.5 GB of memory each with the embedded model). Helps when cores are "
            "idle: on 2 cores, --workers 2; more workers than cores only costs memory. 1 answers in this "
            "process.",
        ),
    ] = 1,
    model: ModelOption = None,
    adapter: AdapterOption = None,
    no_adapter: NoAdapterOption = False,
    llm_endpoint: EndpointOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary.")] = False,
) -> None:
    """Answer many needs from a file, writing each chunk's records as soon as it completes.

    Bad rows (empty, too long, not UTF-8) become error records and the batch goes on.

    With --workers N, N processes answer chunks side by side and records still come out in input order.
    A worker that dies (out of memory, kill -9) costs nothing written: its chunk is answered again by
    another worker, and if it dies twice its needs become error records that --resume answers again.

    \b
    Exit code: 0 all done, 1 some rows failed or workers kept dying, 2 bad arguments, 130 stopped by Ctrl-C.
    Examples:
      whazzat batch needs.txt --out results.jsonl
      whazzat batch needs.csv --column question --out results.csv -p 2
      whazzat batch needs.txt --out results.jsonl --resume
      whazzat batch needs.txt --out results.jsonl --workers 2
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
    chain = pool = None
    # Workers load a model each: none is started when an earlier run (--resume) left nothing to answer.
    pending = any(row.need is not None and row.need not in done.needs for row in rows)
    try:
        if workers > 1 and not pending:
            search = _shared_search(settings)
        elif workers > 1:
            pool, search = _start_workers(settings, workers, console)
        else:
            chain, search = _build_chain(settings, console)
    except (WhazzatError, ValueError) as error:  # a model that does not load, a bad catalog ...
        fail(str(error))

    in_flight = "the chunks in flight" if pool else "the current chunk"

    def on_stop() -> None:
        console.print(f"Stopping after {in_flight} (Ctrl-C again to stop now)...", highlight=False)

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
            pool=pool,
        )
    except BatchOutputError as error:  # the disk filled up, the file vanished ...
        fail(str(error))
    finally:
        if pool is not None:
            pool.close(now=True)  # already closed unless something failed: never leave a worker behind
    summary.setup_seconds = round(time.perf_counter() - started - summary.wall_seconds, 3)
    print_summary(console, summary, str(out) if out else "stdout")
    raise typer.Exit(summary.exit_code)


def chain_factory(settings: Settings, search: SearchBackend) -> Runnable[Any, Any]:
    """The batch's chain on ``search``: built here with --workers 1, in each worker process otherwise
    (which imports this function by name, so it stays module-level)."""
    from agent.cli.common import quiet_libraries
    from agent.pipeline.chain import build_chain

    quiet_libraries()
    return build_chain(settings, backend=search)


def _shared_search(settings: Settings) -> SharedSearch:
    """The configured backend behind one :class:`~agent.batch.search.SharedSearch` for the whole batch."""
    from agent.batch.search import SharedSearch
    from tools.registry import make_backend

    return SharedSearch(make_backend(settings), concurrency=settings.search_concurrency)


def _build_chain(settings: Settings, console: Console) -> tuple[Runnable[Any, Any], SharedSearch]:
    """The chain on a :class:`~agent.batch.search.SharedSearch` over the configured backend."""
    from agent.cli.common import quiet_libraries

    quiet_libraries()
    search = _shared_search(settings)
    with console.status("Loading the model..."):
        chain = chain_factory(settings, search)
    return chain, search


def _start_workers(settings: Settings, workers: int, console: Console) -> tuple[WorkerPool, SharedSearch]:
    """``workers`` processes with the chain, searching through one shared search in this process."""
    from agent.batch.workers import WorkerPool

    search = _shared_search(settings)
    # chain_factory is looked up now, so a test can point it at a fake chain.
    pool = WorkerPool(chain_factory, settings, workers=workers, search=search)
    with console.status(f"Loading the model (the first of {workers} workers; the others join as they load)..."):
        pool.start()
    return pool, search
