"""Put saved ``whazzat eval --json`` results into an adapter's model card, as one table.

    whazzat eval finetune/data/test.jsonl finetune/data/seed_test.jsonl --json > ablation.json
    python -m finetune.card_eval finetune/adapters/smollm2-135m-whazzat-grounded ablation.json

A file may hold one result (``EvalResult``) or a whole ablation (``{"runs": [...]}``): one row per run.

The card's evaluation section (between its markers) is replaced, so re-running with new results leaves
no stale figures. Every row comes from a result file: the card never holds a figure no run printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finetune.metrics import MATCH_COSINE, Summary
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
        f"never holds the evaluated split; table written {day} by `python -m finetune.card_eval`."
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write saved `whazzat eval --json` results into a model card.")
    parser.add_argument("adapter_dir", type=Path, help="The adapter directory whose README.md is the card.")
    parser.add_argument("results", type=Path, nargs="+", help="Files written by `whazzat eval ... --json`.")
    parser.add_argument("--note", default="", help="A sentence under the table (e.g. what the run saw).")
    args = parser.parse_args(argv)
    results: list[SavedEval] = []
    for path in args.results:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            runs = raw["runs"] if isinstance(raw, dict) and "runs" in raw else [{"result": raw}]
            results.extend(SavedEval.model_validate(run["result"]) for run in runs)
        except (OSError, ValueError, KeyError, TypeError) as error:  # ValidationError is a ValueError
            sys.exit(f"error: {path} is not a saved `whazzat eval --json` result: {str(error).splitlines()[0]}")
    try:
        write_eval_section(args.adapter_dir, eval_table(results, args.note))
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(f"wrote {len(results)} rows into {args.adapter_dir / 'README.md'}")


if __name__ == "__main__":
    main()
