"""The parts against the whole: model only, memory only, and grounded + fused, each with rewriting off and
on, on one or more eval files, scored side by side (``whazzat eval DATA...``).

The memory an eval uses never holds the split it evaluates: the shipped splits are ordered train < val
< test, and the first split that shares a need with the data is left out together with every later one
(test data: train + val; val data: train only; needs from elsewhere: all three). The user's own rows
are never used, so a run is reproducible.

Each need is also put in a bucket by its nearest row in that memory (MiniLM cosine < 0.6, 0.6-0.75,
>= 0.75), so the table shows how each part does on needs the memory covers well and on needs far from it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from agent.core.config import MemoryMode
from agent.pipeline.evaluation import EvalItem, EvalResult, memory_splits_for
from agent.pipeline.scoring import NeedScore

MODES: tuple[MemoryMode, ...] = ("model", "memory", "fused")
#: Upper bounds of the nearest-row buckets (the last is open).
BUCKETS: tuple[tuple[str, float], ...] = (("<0.60", 0.6), ("0.60-0.75", 0.75), (">=0.75", float("inf")))


class BucketFigures(BaseModel):
    needs: int
    hit_at_5: float
    precision_at_5: float


class AblationRun(BaseModel):
    """One configuration on one data file."""

    data: str
    mode: MemoryMode
    paraphrases: int = Field(description="0 means rewriting off.")
    result: EvalResult
    buckets: dict[str, BucketFigures] = Field(default_factory=dict)


class Ablation(BaseModel):
    """Every run, plus which shipped splits each data file's memory held."""

    memory_splits: dict[str, list[str]]
    runs: list[AblationRun]


def bucket_of(nearest: float) -> str:
    return next(name for name, upper in BUCKETS if nearest < upper)


def bucket_figures(scores: Sequence[NeedScore], nearest: Sequence[float]) -> dict[str, BucketFigures]:
    """hit@5 and precision@5 per nearest-row bucket (buckets with no need are left out)."""
    figures: dict[str, BucketFigures] = {}
    for name, _ in BUCKETS:
        inside = [s for s, n in zip(scores, nearest, strict=True) if bucket_of(n) == name]
        if inside:
            figures[name] = BucketFigures(
                needs=len(inside),
                hit_at_5=round(statistics.fmean(s.hit for s in inside), 4),
                precision_at_5=round(statistics.fmean(s.precision for s in inside), 4),
            )
    return figures


def run_ablation(
    datasets: Sequence[tuple[str, Sequence[EvalItem]]],
    evaluate_run: Callable[[str, Sequence[EvalItem], MemoryMode, int, list[str]], EvalResult],
    nearest_rows: Callable[[Sequence[EvalItem], list[str]], list[float]],
    *,
    modes: Sequence[MemoryMode] = MODES,
    paraphrase_settings: Sequence[int] = (0, 4),
) -> Ablation:
    """Every mode x rewrite setting on every data file. ``evaluate_run(data, items, mode, paraphrases,
    memory_splits)`` runs one configuration; ``nearest_rows(items, memory_splits)`` gives each need's best
    cosine with the memory."""
    runs: list[AblationRun] = []
    splits_used: dict[str, list[str]] = {}
    for name, items in datasets:
        splits = memory_splits_for(items)
        splits_used[name] = splits
        nearest = nearest_rows(items, splits)
        for paraphrases in paraphrase_settings:
            for mode in modes:
                result = evaluate_run(name, items, mode, paraphrases, splits)
                runs.append(
                    AblationRun(
                        data=name,
                        mode=mode,
                        paraphrases=paraphrases,
                        result=result,
                        buckets=bucket_figures(result.per_need, nearest),
                    )
                )
    return Ablation(memory_splits=splits_used, runs=runs)
