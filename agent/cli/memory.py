"""``whazzat memory add|stats|search``: the need memory from the command line.

    whazzat memory add my-needs.jsonl        # rows with "need" and "products" (JSONL or CSV); used at once
    whazzat memory stats                     # how many rows, from where
    whazzat memory search "thing to open wine bottles"

Importing this module is cheap: MiniLM and the store load inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.common import fail
from agent.cli.options import JsonOption

memory_app = typer.Typer(
    help="The need memory: known needs and their product types, which ground every answer.\n\n"
    "Rows you add are used by the very next question; nothing is retrained.",
    no_args_is_help=True,
)


def _memory():  # noqa: ANN202 - NeedMemory, imported lazily
    from agent.core.config import get_settings
    from agent.core.errors import WhazzatError
    from agent.pipeline.memory import default_memory

    try:
        return default_memory(get_settings())
    except WhazzatError as error:
        fail(str(error))
    except Exception as error:  # noqa: BLE001 - e.g. a Chroma server that is down: one line, no traceback
        fail(f"cannot open the need memory: {type(error).__name__}: {error}")


@memory_app.command("add")
def memory_add(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL rows {\"need\": ..., \"products\": [...]} (the dataset's format), or a CSV with "
            "'need' and 'products' columns (types separated by ';' or ',')."
        ),
    ],
) -> None:
    """Add known needs and their product types to the memory. A bad row stops the whole file, with its
    line number and reason, so nothing is half-added."""
    from agent.pipeline.memory import MemoryDataError, read_rows_file

    try:
        rows = read_rows_file(file, source="user")
    except MemoryDataError as error:
        fail(f"{error} (nothing was added)")
    if not rows:
        fail(f"{file} has no rows (nothing was added)")
    memory = _memory()
    added = memory.add(rows)
    typer.echo(f"Added {added} rows to the need memory ({memory.stats().rows} rows in all).")


@memory_app.command("stats")
def memory_stats(json_output: JsonOption = False) -> None:
    """How many rows the memory holds, by source (dataset, user, feedback)."""
    stats = _memory().stats()
    if json_output:
        typer.echo(stats.model_dump_json())
        return
    sources = ", ".join(f"{name} {count}" for name, count in stats.by_source.items())
    typer.echo(f"{stats.rows} rows ({sources}) in the {stats.store} store; your rows: {stats.user_rows_file}")


@memory_app.command("search")
def memory_search(
    query: Annotated[str, typer.Argument(help="A need in your own words.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=50, help="How many known needs to show.")] = 5,
    json_output: JsonOption = False,
) -> None:
    """The known needs nearest to QUERY, with their product types and cosine similarity."""
    from agent.pipeline.validation import validate_need

    try:
        query = validate_need(query)
    except ValueError as error:
        fail(str(error))
    neighbours = _memory().search([query], k)[0]
    if json_output:
        typer.echo(json.dumps([n.model_dump(mode="json") for n in neighbours]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"nearest known needs to {query!r}")
    for column in ("cosine", "need", "product types", "source"):
        table.add_column(column, overflow="fold")
    for n in neighbours:
        table.add_row(f"{n.similarity:.2f}", n.need, ", ".join(n.products), n.source)
    Console(highlight=False).print(table)
