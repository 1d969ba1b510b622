"""Put saved ``whazzat eval --json`` results into an adapter's model card, as one table.

    whazzat eval finetune/data/test.jsonl finetune/data/seed_test.jsonl --json > ablation.json
    whazzat card-eval finetune/adapters/smollm2-135m-whazzat-grounded ablation.json

A file may hold one result (``EvalResult``) or a whole ablation (``{"runs": [...]}``): one row per run.

The card's evaluation section (between its markers) is replaced, so re-running with new results leaves
no stale figures. Every row comes from a result file: the card never holds a figure no run printed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field

from agent.cli.common import fail
from agent.pipeline.scoring import MATCH_COSINE, Summary
from finetune.model_card import write_eval_section

#: The issue's targets for the embedded default, shown next to the figures.
TARGET_HIT_AT_5 = 0.85
TARGET_PRECISION_AT_5 = 0.5

_WEIGHTS = {"int8": "int8", "int8-dynamic": "int8 dynamic", "none": "fp32"}


class SavedEval(BaseModel):
    """The parts of a saved ``whazzat eval --json`` result the card shows (not the per-need scores)."""

    model_config = ConfigDict(extra="ignore")

    data: str
    settings: dict[str, object] = Field(default_factory=dict)
    summary: Summary


def _row(result: SavedEval) -> str:
    settings, summary = result.settings, result.summary
    weights = _WEIGHTS.get(str(settings.get("quantize")), str(settings.get("quantize", "?")))
    answers = {"model": "model", "memory": "memory", "fused": "grounded + fused"}.get(
        str(settings.get("memory_mode", "model")), "?"
    )
    return (
        f"| `{result.data}` ({summary.needs}) | {answers} | {settings.get('paraphrases', '?')} | {weights} "
        f"| {settings.get('fewshot_k', 0)} | {summary.valid_output_rate:.2f} | {summary.hit_at_5:.3f} "
        f"| {summary.precision_at_5:.3f} | {summary.precision_any_at_5:.3f} | {summary.recall_at_5:.3f} "
        f"| {summary.latency_mean_s:.2f} |"
    )


def eval_table(results: Sequence[SavedEval], note: str = "") -> str:
    """The markdown of the card's evaluation section: how the figures were made, then one row per run."""
    day = datetime.now(timezone.utc).date().isoformat()
    how = (
        "`whazzat eval DATA... --json` (the answer's first 5 types; a match is an equal normalised name "
        f"or MiniLM cosine >= {MATCH_COSINE}; precision one-to-one, and any-match), links backend; the memory "
        f"never holds the evaluated split; table written {day} by `whazzat card-eval`."
    )
    lines = [
        how,
        "",
        "| data (needs) | answers from | paraphrases | weights | few-shot k | valid | hit@5 | precision@5 "
        "| precision@5 any | recall@5 | s/need |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(_row(result) for result in results),
        "",
        f"Targets: hit@5 >= {TARGET_HIT_AT_5}, precision@5 >= {TARGET_PRECISION_AT_5}.",
    ]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def card_eval(
    adapter_dir: Annotated[Path, typer.Argument(help="The adapter directory whose README.md is the card.")],
    results: Annotated[list[Path], typer.Argument(help="Files written by `whazzat eval ... --json`.")],
    note: Annotated[str, typer.Option("--note", help="A sentence under the table (e.g. what the run saw).")] = "",
) -> None:
    """Write saved `whazzat eval --json` results into an adapter's model card, as one table.

    The card's evaluation section is replaced, so no stale figure stays; every row comes from a file.

    \b
    Example:
      whazzat card-eval finetune/adapters/smollm2-135m-whazzat-grounded ablation.json
    """
    saved: list[SavedEval] = []
    for path in results:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            runs = raw["runs"] if isinstance(raw, dict) and "runs" in raw else [{"result": raw}]
            saved.extend(SavedEval.model_validate(run["result"]) for run in runs)
        except (OSError, ValueError, KeyError, TypeError) as error:  # ValidationError is a ValueError
            fail(f"{path} is not a saved `whazzat eval --json` result: {str(error).splitlines()[0]}")
    try:
        write_eval_section(adapter_dir, eval_table(saved, note))
    except (OSError, ValueError) as error:
        fail(str(error))
    typer.echo(f"wrote {len(saved)} rows into {adapter_dir / 'README.md'}")


def main() -> None:
    """``python -m finetune.card_eval``: the same command as ``whazzat card-eval``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(card_eval)
    app()


if __name__ == "__main__":
    main()
