"""``whazzat eval DATA``: the chain's product types against gold ones, as a table or one JSON object.

    whazzat eval finetune/data/seed_test.jsonl --paraphrases 0
    whazzat eval finetune/data/test.jsonl --json > eval.json

Importing this module is cheap (no torch): the chain and MiniLM load inside :func:`eval_command`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli_options import AdapterOption, JsonOption, ModelOption, NoAdapterOption, fail

if TYPE_CHECKING:
    from finetune.eval import EvalResult


def eval_command(
    data: Annotated[
        Path,
        typer.Argument(
            help="JSONL, one {'need': ..., 'products': [...]} per line, e.g. finetune/data/test.jsonl."
        ),
    ],
    paraphrases: Annotated[
        int | None, typer.Option("--paraphrases", "-p", help="Rewrites per need (0 turns rewriting off).")
    ] = None,
    json_output: JsonOption = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Evaluate only the first N needs.")
    ] = None,
    model: ModelOption = None,
    adapter: AdapterOption = None,
    no_adapter: NoAdapterOption = False,
) -> None:
    """Score the chain's top-5 product types per need: valid-output rate, hit@5, precision@5, recall@5."""
    from pydantic import ValidationError

    from agent.config import get_settings
    from finetune.eval import DataError, load_items

    try:
        items = load_items(data, limit)
    except DataError as error:
        fail(str(error))
    try:
        settings = get_settings(
            paraphrases=paraphrases,
            model=model,
            adapter=adapter,
            no_adapter=no_adapter or None,
            backend="links",
        )
    except ValidationError as error:
        fail(f"invalid option: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}")

    from agent.chain import build_chain
    from agent.errors import WhazzatError
    from finetune.eval import evaluate

    try:
        chain = build_chain(settings)
    except WhazzatError as error:  # e.g. a model or adapter that cannot be found: the user can fix it
        fail(str(error))
    run_settings = {
        "model": settings.model,
        "adapter": settings.adapter,
        "no_adapter": settings.no_adapter,
        "paraphrases": settings.paraphrases,
        "batch_size": settings.batch_size,
        # The levers that change answers, so a saved --json result says what produced it.
        "quantize": settings.quantize,
        "rewrite_strategy": settings.rewrite_strategy,
        "fewshot_k": settings.fewshot_k,
    }
    with _progress(len(items)) as advance:
        result = evaluate(
            items,
            chain.batch,
            batch_size=settings.batch_size,
            on_batch=advance,
            data=str(data),
            settings=run_settings,
        )
    if json_output:
        sys.stdout.write(json.dumps(result.model_dump(mode="json")) + "\n")
    else:
        print_result(result)


class _progress:
    """A rich progress bar over needs on stderr (stdout stays clean for --json)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("evaluating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("needs", total=total)

    def __enter__(self):
        self._progress.start()
        return lambda done: self._progress.advance(self._task, done)

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()


def print_result(result: EvalResult) -> None:
    """The run's settings on one line, then the figures as a rich table."""
    from rich.console import Console
    from rich.table import Table

    summary = result.summary
    settings = result.settings
    adapter = "none" if settings.get("no_adapter") else settings.get("adapter") or "default"
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("valid-output rate", f"{summary.valid_output_rate:.3f}"),
        ("hit@5", f"{summary.hit_at_5:.3f}"),
        ("precision@5", f"{summary.precision_at_5:.3f}"),
        ("recall@5", f"{summary.recall_at_5:.3f}"),
        ("distinct types per need", f"{summary.distinct_types_per_need:.2f}"),
        ("latency per need, mean (s)", f"{summary.latency_mean_s:.3f}"),
        ("latency per need, p50 (s)", f"{summary.latency_p50_s:.3f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(
        f"{result.data}: {summary.needs} needs; model {settings.get('model')}, adapter {adapter}, "
        f"paraphrases {settings.get('paraphrases')}",
        highlight=False,
    )
    console.print(table)
    console.print(
        f"A prediction matches a gold type on equal normalised names or MiniLM cosine >= {summary.match_cosine}."
    )
    errors = [score for score in result.per_need if score.error]
    if errors:
        console.print(
            f"[yellow]{len(errors)} needs failed[/], e.g. {errors[0].need!r}: {errors[0].error}",
            highlight=False,
        )
