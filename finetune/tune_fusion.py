"""Tune the fusion's weights and threshold on val (never on test).

    whazzat tune-fusion finetune/data/val.jsonl [--sample N] [--json]

The chain runs once over the needs (grounded + fused, rewriting on, memory of the splits before val:
train only), keeping every fused type with its raw parts (each weight 1, no threshold). The weights are
then searched offline on a grid: each setting re-ranks the same candidates, drops the types under the
threshold (keeping ``min_products``), and scores the top 5 against gold. The objective is hit@5 +
precision@5 (one-to-one). The best setting is printed as ``WHAZZAT_FUSION_*`` lines to copy into the
defaults in ``agent/core/config.py``.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from agent.cli.common import fail
from agent.pipeline.scoring import TOP_K, allowed_matches, match_pairs

MODEL_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
MEMORY_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
RELEVANCE_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)

PARTS = ("model", "memory", "relevance")


class Candidate(BaseModel):
    product: str
    parts: dict[str, float]
    first_seen: int


class TuneRow(BaseModel):
    model: float
    memory: float
    relevance: float
    min_score: float
    hit_at_5: float
    precision_at_5: float
    types_shown: float


def rank(candidates: Sequence[Candidate], weights: dict[str, float], min_score: float, min_products: int) -> list[str]:
    """The types shown for one need under ``weights``: the fusion's own ranking and threshold rule."""
    from agent.pipeline.fusion import kept_count

    scored = sorted(
        ((sum(weights[p] * c.parts.get(p, 0.0) for p in PARTS), c) for c in candidates),
        key=lambda pair: (-pair[0], pair[1].first_seen),
    )
    keep = kept_count([score for score, _ in scored], min_score, min_products)
    return [c.product for _, c in scored[:keep]]


def search_grid(
    candidates: Sequence[Sequence[Candidate]],
    matches: Sequence[dict[str, set[int]]],
    golds: Sequence[Sequence[str]],
    min_products: int,
) -> list[TuneRow]:
    """Every grid setting's hit@5, precision@5 and types shown, best objective first."""
    import numpy as np

    rows = []
    for model, memory, relevance, threshold in itertools.product(
        MODEL_WEIGHTS, MEMORY_WEIGHTS, RELEVANCE_WEIGHTS, THRESHOLDS
    ):
        if model == memory == relevance == 0.0:
            continue
        weights = {"model": model, "memory": memory, "relevance": relevance}
        hits, precisions, shown = [], [], []
        for need_candidates, need_matches, gold in zip(candidates, matches, golds, strict=True):
            ranked = rank(need_candidates, weights, threshold, min_products)
            top = ranked[:TOP_K]
            similarity = np.zeros((len(top), len(gold)))
            for i, product in enumerate(top):
                for j in need_matches.get(product, ()):
                    similarity[i, j] = 1.0
            pairs = match_pairs(top, gold, similarity)
            hits.append(1.0 if pairs else 0.0)
            precisions.append(len(pairs) / len(top) if top else 0.0)
            shown.append(len(ranked))
        rows.append(
            TuneRow(
                model=model, memory=memory, relevance=relevance, min_score=threshold,
                hit_at_5=round(statistics.fmean(hits), 4),
                precision_at_5=round(statistics.fmean(precisions), 4),
                types_shown=round(statistics.fmean(shown), 2),
            )
        )
    rows.sort(key=lambda r: -(r.hit_at_5 + r.precision_at_5))
    return rows


def gold_matches(products: Sequence[str], gold: Sequence[str], embed) -> dict[str, set[int]]:  # noqa: ANN001
    """For each candidate type, the gold types it may match (the eval's own rule, computed once)."""
    if not products:
        return {}
    similarity = embed(list(products)) @ embed(list(gold)).T
    return {product: set(allowed) for product, allowed in zip(products, allowed_matches(products, gold, similarity), strict=True)}


def tune_fusion(
    data: Annotated[Path, typer.Argument(help="val data (JSONL with need and products); never test.")],
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="N needs spread evenly through the file.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print every grid row as JSON.")] = False,
) -> None:
    """Tune the fusion's weights and threshold on val (never on test).

    Answers the needs once, then searches the weight grid offline and prints the best settings as
    WHAZZAT_FUSION_* lines for agent/core/config.py.

    \b
    Example:
      whazzat tune-fusion finetune/data/val.jsonl --sample 280
    """
    from agent.pipeline.evaluation import DataError, evenly_spaced, load_items, memory_splits_for

    try:
        items = evenly_spaced(load_items(data), sample)
    except DataError as error:
        fail(str(error))
    splits = memory_splits_for(items)
    if splits == ["train", "val"]:  # the needs come from the test split
        fail("these needs are in the test split; tune on val, never on test")

    from tqdm import tqdm

    from agent.core.config import get_settings
    from agent.core.embeddings import embed
    from agent.pipeline.chain import build_chain
    from agent.pipeline.evaluation import eval_memory

    settings = get_settings(
        memory_mode="fused", fusion_model_weight=1.0, fusion_memory_weight=1.0, fusion_relevance_weight=1.0,
        fusion_min_score=0.0, max_products=20, backend="links",
    )
    memory = eval_memory(settings, splits)
    chain = build_chain(settings, memory=memory)
    with tqdm(total=len(items), desc="answering val", unit="need", file=sys.stderr) as bar:
        predictions = _raw_candidates([item.need for item in items], chain, bar)
    golds = [item.products for item in items]
    matches = [gold_matches([c.product for c in cands], gold, embed) for cands, gold in zip(predictions, golds, strict=True)]
    rows = search_grid(predictions, matches, golds, settings.min_products)
    if json_output:
        print(json.dumps({"data": str(data), "needs": len(items), "memory_splits": splits,
                          "rows": [r.model_dump() for r in rows]}))
        return
    best = rows[0]
    print(f"{data}: {len(items)} needs, memory of {', '.join(splits)}; best of {len(rows)} settings:")
    for row in rows[:10]:
        print(f"  model {row.model:<4} memory {row.memory:<4} relevance {row.relevance:<4} min_score {row.min_score:<4}"
              f" -> hit@5 {row.hit_at_5:.3f}  precision@5 {row.precision_at_5:.3f}  types shown {row.types_shown:.1f}")
    print(f"WHAZZAT_FUSION_MODEL_WEIGHT={best.model}\nWHAZZAT_FUSION_MEMORY_WEIGHT={best.memory}\n"
          f"WHAZZAT_FUSION_RELEVANCE_WEIGHT={best.relevance}\nWHAZZAT_FUSION_MIN_SCORE={best.min_score}")


def _raw_candidates(needs: list[str], chain, bar) -> list[list[Candidate]]:  # noqa: ANN001
    """Each need's fused types with their raw parts (every weight is 1 in the run's settings)."""
    found: list[list[Candidate]] = []
    batch = 8
    for start in range(0, len(needs), batch):
        for result in chain.batch(needs[start : start + batch]):
            found.append(
                [Candidate(product=s.product, parts=s.score_parts, first_seen=i) for i, s in enumerate(result.suggestions)]
            )
        bar.update(len(needs[start : start + batch]))
    return found


def main() -> None:
    """``python -m finetune.tune_fusion``: the same command as ``whazzat tune-fusion``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(tune_fusion)
    app()


if __name__ == "__main__":
    main()
