"""``whazzat eval DATA...``: the chain's product types against gold ones, the parts against the whole, as a
table or one JSON object.

    whazzat eval finetune/data/test.jsonl finetune/data/seed_test.jsonl          # the whole ablation
    whazzat eval finetune/data/seed_test.jsonl --mode fused --rewrite on --json > eval.json

Importing this module is cheap (no torch): the chain and MiniLM load inside :func:`eval_command`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.common import fail
from agent.cli.options import AdapterOption, JsonOption, ModelOption, NoAdapterOption

if TYPE_CHECKING:
    from agent.core.config import Settings
    from agent.pipeline.evaluation import EvalResult
    from finetune.ablation import Ablation


def eval_command(
    data: Annotated[
        list[Path],
        typer.Argument(
            help="JSONL files, one {'need': ..., 'products': [...]} per line, e.g. finetune/data/test.jsonl "
            "finetune/data/seed_test.jsonl."
        ),
    ],
    paraphrases: Annotated[
        int | None,
        typer.Option("--paraphrases", "-p", help="Rewrites per need when rewriting is on (default: the setting, 4)."),
    ] = None,
    rewrite: Annotated[
        str, typer.Option("--rewrite", help="Rewriting 'off', 'on', or 'both' side by side.")
    ] = "both",
    modes: Annotated[
        list[str] | None,
        typer.Option(
            "--mode",
            "-m",
            help="What answers, repeatable: 'model' (the model alone), 'memory' (the need memory's votes "
            "alone), 'fused' (grounded + fused, the default chain). Default: all three.",
        ),
    ] = None,
    json_output: JsonOption = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Evaluate only the first N needs of each file.")
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample", min=1, help="Evaluate N needs spread evenly through each file (all areas; always the same)."
        ),
    ] = None,
    needs_per_call: Annotated[
        int | None,
        typer.Option(
            "--needs-per-call",
            min=1,
            help="Needs per chain call (default: the batch_size setting, 8). 1 answers each need alone, as "
            "`whazzat ask` and the UI do: under int8 a prompt's answer depends a little on its batch.",
        ),
    ] = None,
    model: ModelOption = None,
    adapter: AdapterOption = None,
    no_adapter: NoAdapterOption = False,
) -> None:
    """Score the parts against the whole: model only, memory only and grounded + fused, with rewriting off
    and on, side by side: hit@5, precision@5 (one-to-one and any-match), recall@5 and s/need, and hit@5 by
    how close each need's nearest memory row is. The memory never holds the split being evaluated.

    Example: whazzat eval finetune/data/test.jsonl finetune/data/seed_test.jsonl --json > ablation.json
    """
    from pydantic import ValidationError

    from agent.core.config import get_settings
    from agent.pipeline.evaluation import DataError, evenly_spaced, load_items
    from finetune.ablation import MODES

    modes = modes or list(MODES)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        fail(f"--mode must be one of {', '.join(MODES)} (got {', '.join(unknown)})")
    if rewrite not in {"off", "on", "both"}:
        fail(f"--rewrite must be off, on or both (got {rewrite!r})")
    try:
        datasets = [(str(path), evenly_spaced(load_items(path, limit), sample)) for path in data]
    except DataError as error:
        fail(str(error))
    try:
        settings = get_settings(
            paraphrases=paraphrases, model=model, adapter=adapter, no_adapter=no_adapter or None, backend="links"
        )
    except ValidationError as error:
        fail(f"invalid option: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}")
    if settings.paraphrases == 0 and rewrite == "on":
        fail("rewriting 'on' needs --paraphrases of at least 1")
    # -p 0 means no rewriting, so 'both' is just 'off'.
    rewrites = sorted({0} if rewrite == "off" else {0, settings.paraphrases} if rewrite == "both" else {settings.paraphrases})

    from agent.core.errors import WhazzatError
    from finetune.ablation import run_ablation

    total = sum(len(items) for _, items in datasets) * len(modes) * len(rewrites)
    runner = _Runner(settings, total, needs_per_call or settings.batch_size)
    try:
        with runner:
            ablation = run_ablation(
                datasets, runner.evaluate, runner.nearest_rows, modes=modes, paraphrase_settings=rewrites
            )
    except WhazzatError as error:  # e.g. a model or adapter that cannot be found: the user can fix it
        fail(str(error))
    if json_output:
        sys.stdout.write(ablation.model_dump_json() + "\n")
    else:
        print_ablation(ablation)


class _Runner:
    """Runs one configuration of the ablation: a chain per mode over one shared model and one memory
    per set of splits, with a progress bar over every need of every run (on stderr)."""

    def __init__(self, settings: Settings, total: int, needs_per_call: int) -> None:
        self.settings = settings
        self.needs_per_call = needs_per_call
        self.progress = _progress(total)
        self._memories: dict[tuple[str, ...], object] = {}

    def __enter__(self) -> _Runner:
        self.advance = self.progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.__exit__(*exc_info)

    def memory(self, splits: list[str]):  # noqa: ANN201 - NeedMemory
        from agent.pipeline.evaluation import eval_memory

        key = tuple(splits)
        if key not in self._memories:
            self._memories[key] = eval_memory(self.settings, splits)
        return self._memories[key]

    def nearest_rows(self, items, splits: list[str]) -> list[float]:  # noqa: ANN001
        found = self.memory(splits).search([item.need for item in items], 1)
        return [hits[0].similarity if hits else 0.0 for hits in found]

    def evaluate(self, data: str, items, mode: str, paraphrases: int, splits: list[str]) -> EvalResult:  # noqa: ANN001
        from agent.pipeline.chain import build_chain
        from agent.pipeline.evaluation import evaluate

        # answer_cache_days 0: every answer is generated, so s/need is the model's time, not a cache read.
        settings = self.settings.model_copy(
            update={"memory_mode": mode, "paraphrases": paraphrases, "answer_cache_days": 0}
        )
        chain = build_chain(settings, memory=self.memory(splits) if mode != "model" else None)
        return evaluate(
            items,
            chain.batch,
            batch_size=self.needs_per_call,
            on_batch=self.advance,
            data=data,
            settings=run_settings(settings, splits, self.needs_per_call),
        )


def run_settings(settings: Settings, memory_splits: list[str], needs_per_call: int) -> dict[str, object]:
    """The levers that change answers, so a saved --json result says what produced it (int8 answers
    depend a little on which prompts share a batch, so the needs per chain call are among them)."""
    return {
        "model": settings.model,
        "adapter": settings.adapter,
        "no_adapter": settings.no_adapter,
        "paraphrases": settings.paraphrases,
        "batch_size": settings.batch_size,
        "needs_per_call": needs_per_call,
        "quantize": settings.quantize,
        "rewrite_strategy": settings.rewrite_strategy,
        "fewshot_k": settings.fewshot_k,
        "memory_mode": settings.memory_mode,
        "memory_splits": list(memory_splits) if settings.memory_mode != "model" else [],
        "neighbours_k": settings.neighbours_k,
        "neighbours_in_prompt": settings.neighbours_in_prompt,
        "grounded_prompts": settings.grounded_prompts,
        "memory_queries": settings.memory_queries,
        "rewrite_skip_similarity": settings.rewrite_skip_similarity,
        "need_prompt_with_rewrite": settings.need_prompt_with_rewrite,
        "fusion": [settings.fusion_model_weight, settings.fusion_memory_weight,
                   settings.fusion_relevance_weight, settings.fusion_min_score],
    }


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


def print_ablation(ablation: Ablation) -> None:
    """One row per data file, rewrite setting and mode, as a rich table, then how matching works."""
    from rich.console import Console
    from rich.table import Table

    from finetune.ablation import BUCKETS

    console = Console()
    table = Table(title="model only · memory only · grounded + fused")
    for column in ("data", "rewrite", "answers from", "needs", "hit@5", "p@5", "p@5 any", "r@5", "types",
                   "s/need", *(f"hit@5 {name}" for name, _ in BUCKETS)):
        table.add_column(column, justify="left" if column in {"data", "rewrite", "answers from"} else "right")
    for run in ablation.runs:
        summary = run.result.summary
        buckets = [
            f"{run.buckets[name].hit_at_5:.3f} ({run.buckets[name].needs})" if name in run.buckets else "-"
            for name, _ in BUCKETS
        ]
        table.add_row(
            Path(run.data).name,
            f"on ({run.paraphrases})" if run.paraphrases else "off",
            {"model": "model", "memory": "memory", "fused": "grounded + fused"}[run.mode],
            str(summary.needs),
            f"{summary.hit_at_5:.3f}",
            f"{summary.precision_at_5:.3f}",
            f"{summary.precision_any_at_5:.3f}",
            f"{summary.recall_at_5:.3f}",
            f"{summary.distinct_types_per_need:.1f}",
            f"{summary.latency_mean_s:.2f}",
            *buckets,
        )
    console.print(table)
    for data, splits in ablation.memory_splits.items():
        console.print(f"{data}: memory of the shipped split(s) {', '.join(splits) or 'none'}", highlight=False)
    match = ablation.runs[0].result.summary.match_cosine if ablation.runs else 0.75
    console.print(
        f"Top 5 of each answer scored; a prediction matches a gold type on equal normalised names or MiniLM "
        f"cosine >= {match} (p@5: one-to-one; p@5 any: any gold type). hit@5 by the need's nearest memory "
        "row (cosine), needs in brackets."
    )
    for run in ablation.runs:
        errors = [score for score in run.result.per_need if score.error]
        if errors:
            console.print(
                f"[yellow]{len(errors)} needs failed[/] ({run.mode}), e.g. {errors[0].need!r}: {errors[0].error}",
                highlight=False,
            )
