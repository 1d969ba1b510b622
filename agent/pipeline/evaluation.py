"""Run an evaluation: needs from a JSONL file through a ``predict`` function, scored by :mod:`agent.pipeline.scoring`.

    whazzat eval finetune/data/seed_test.jsonl --paraphrases 0 --json

``predict(needs) -> list[Recommendation]`` is any callable: the CLI (:mod:`finetune.eval_cli`) passes the
chain's ``batch``, tests pass a fake. Needs go through it in batches (one batched generate per stage).
A batch that raises is retried need by need, so one bad need costs one need, not the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.errors import WhazzatError
from agent.core.schemas import Recommendation
from agent.pipeline.dedup import normalize_product
from agent.pipeline.memory import SPLITS, shipped_split_path
from agent.pipeline.scoring import (
    TOP_K,
    Embed,
    NeedScore,
    Summary,
    score_need,
    similarity_matrices,
    summarize,
)

if TYPE_CHECKING:
    from agent.core.config import Settings
    from agent.pipeline.memory import NeedMemory

Predict = Callable[[list[str]], list[Recommendation]]


class DataError(WhazzatError, ValueError):
    """The evaluation data cannot be read; the message is one line that names the file (and line)."""


class EvalItem(BaseModel):
    """One need and its gold product types (other fields of the line, e.g. ``area``, are ignored)."""

    model_config = ConfigDict(extra="ignore")

    need: str = Field(min_length=1)
    products: list[str] = Field(min_length=1)


class Prediction(BaseModel):
    """What the chain answered for one need, reduced to what the metrics need."""

    products: list[str] = Field(default_factory=list, description="All suggested types, best first.")
    votes: list[int] = Field(default_factory=list)
    error: str | None = None
    latency_s: float = 0.0


class EvalResult(BaseModel):
    """A whole evaluation: the figures, the run's settings and every need's score."""

    data: str
    settings: dict[str, object] = Field(default_factory=dict)
    summary: Summary
    per_need: list[NeedScore]


def load_items(path: Path, limit: int | None = None) -> list[EvalItem]:
    """The first ``limit`` (default: all) records of a JSONL file with ``need`` and ``products``."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(EvalItem.model_validate(json.loads(line)))
        except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
            raise DataError(
                f"{path}:{number}: expected a JSON object with a 'need' string and a 'products' list"
            ) from None
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise DataError(f"no records in {path}")
    return items


def evenly_spaced(items: Sequence[EvalItem], n: int | None) -> list[EvalItem]:
    """``n`` items spread evenly through ``items`` (every area of a split file sorted by area), always the
    same ones; all of them when ``n`` is None or not smaller."""
    if n is None or n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _from_recommendation(recommendation: Recommendation, latency_s: float) -> Prediction:
    return Prediction(
        products=[s.product for s in recommendation.suggestions],
        votes=[s.votes for s in recommendation.suggestions],
        latency_s=latency_s,
    )


def _call(needs: list[str], predict: Predict) -> list[Prediction]:
    started = time.perf_counter()
    results = predict(needs)
    if len(results) != len(needs):
        raise RuntimeError(f"predict returned {len(results)} results for {len(needs)} needs")
    latency = (time.perf_counter() - started) / len(needs)  # a batch's wall time, shared by its needs
    return [_from_recommendation(result, latency) for result in results]


def _predict_batch(needs: list[str], predict: Predict) -> list[Prediction]:
    """Predictions for one batch; if it fails, each need again alone, so an error stays with its need."""
    started = time.perf_counter()
    try:
        return _call(needs, predict)
    except Exception as error:  # noqa: BLE001 - a model or chain failure is a result to report, not fatal
        if len(needs) == 1:
            message = f"{type(error).__name__}: {error}"[:300]
            return [Prediction(error=message, latency_s=time.perf_counter() - started)]
    return [prediction for need in needs for prediction in _predict_batch([need], predict)]


def predict_all(
    needs: Sequence[str],
    predict: Predict,
    *,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[Prediction]:
    """Predictions for every need, ``batch_size`` needs per ``predict`` call; ``on_batch(n)`` after each."""
    predictions: list[Prediction] = []
    for start in range(0, len(needs), batch_size):
        batch = list(needs[start : start + batch_size])
        predictions.extend(_predict_batch(batch, predict))
        if on_batch is not None:
            on_batch(len(batch))
    return predictions


def score_predictions(
    items: Sequence[EvalItem], predictions: Sequence[Prediction], embed: Embed
) -> list[NeedScore]:
    """Each need's top-k predictions (the chain's order: fused score, or votes) against its gold types."""
    top = [list(p.products[:TOP_K]) for p in predictions]
    matrices = similarity_matrices(top, [item.products for item in items], embed)
    return [
        score_need(
            item.need,
            item.products,
            predicted,
            matrix,
            distinct_types=len({normalize_product(p) for p in prediction.products}),
            valid=prediction.error is None and bool(prediction.products),
            error=prediction.error,
            latency_s=round(prediction.latency_s, 4),
        )
        for item, prediction, predicted, matrix in zip(items, predictions, top, matrices)
    ]


def evaluate(
    items: Sequence[EvalItem],
    predict: Predict,
    *,
    batch_size: int = 8,
    embed: Embed | None = None,
    on_batch: Callable[[int], None] | None = None,
    data: str = "",
    settings: dict[str, object] | None = None,
) -> EvalResult:
    """Predict every need and score it; ``embed`` defaults to MiniLM (``agent.core.embeddings.embed``)."""
    if embed is None:
        from agent.core.embeddings import embed

    predictions = predict_all(
        [item.need for item in items], predict, batch_size=batch_size, on_batch=on_batch
    )
    scores = score_predictions(items, predictions, embed)
    return EvalResult(data=data, settings=settings or {}, summary=summarize(scores), per_need=scores)


# --- the memory an eval uses: never the split it evaluates -----------------------------------------------
# The shipped splits are ordered train < val < test; the first split that shares a need with the data is
# left out together with every later one (test data: train + val; val data: train only; needs from
# elsewhere: all three). The user's own rows are never used, so a run is reproducible.


def memory_splits_for(items: Sequence[EvalItem]) -> list[str]:
    """The shipped splits an eval of ``items`` may use as memory (see the module docstring)."""
    needs = {item.need.casefold() for item in items}
    allowed: list[str] = []
    for split in SPLITS:
        path = shipped_split_path(split)
        split_needs = _needs_of(path) if path.is_file() else set()
        if needs & split_needs:
            break
        allowed.append(split)
    return allowed


def eval_memory(settings: Settings, splits: Sequence[str]) -> NeedMemory:
    """A memory of the given shipped splits only (see :func:`memory_splits_for`), never the user's rows; on
    a Chroma server, in a collection of its own so the shared one is never mixed with it."""
    from agent.pipeline.memory import build_memory

    return build_memory(
        settings.home_dir,
        splits=splits,
        include_user=False,
        url=settings.memory_url,
        collection=f"{settings.memory_collection}-eval-{'-'.join(splits)}",
    )


def _needs_of(path: Path) -> set[str]:
    return {
        json.loads(line)["need"].casefold()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
