"""Fuse the product types of the model and of the need memory into one ranked list, with reasons kept.

Three parts make a type's score, each in [0, 1], weighted by settings tuned on val
(``whazzat tune-fusion``):

- ``model``: the share of prompts (the need and its paraphrases) the model proposed it for;
- ``memory``: the share of the neighbours' weight behind it, where a neighbour weighs its cosine with
  the closest prompt, less for each closer neighbour ahead of it, and a type less the later its neighbour
  lists it;
- ``relevance``: its best MiniLM cosine with the need and its paraphrases (a type far from every
  phrasing of the need is probably noise).

Near-duplicates are folded first (:func:`agent.pipeline.dedup.fold_products`), over both sources together, so a
type the model and the memory both back is one type with both backings. Weak types are then dropped:
below ``min_score`` a type goes, but the ``min_products`` best always stay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.core.schemas import Neighbour, Suggestion
from agent.pipeline.dedup import Similarity, fold_products

#: A neighbour's weight falls by this factor for each closer neighbour ranked ahead of it.
RANK_DECAY = 0.85
#: A type's weight within a neighbour falls by this fraction per place down the neighbour's list.
POSITION_DECAY = 0.1

#: ``relevance(types, prompts)`` -> cosine matrix (rows: types, columns: prompts).
Relevance = Callable[[Sequence[str], Sequence[str]], Sequence[Sequence[float]]]

MODEL, MEMORY = "model", "memory"


@dataclass(frozen=True)
class FusionWeights:
    """How the parts combine, and which weak types are dropped."""

    model: float = 1.0
    memory: float = 1.0
    relevance: float = 0.5
    min_score: float = 0.0
    min_products: int = 3
    max_products: int = 8


def merge_neighbours(found: Sequence[Sequence[Neighbour]], limit: int) -> list[Neighbour]:
    """The union of the neighbours found for each prompt: one entry per known need (its best cosine),
    closest first, at most ``limit``."""
    best: dict[tuple[str, tuple[str, ...]], Neighbour] = {}
    for neighbours in found:
        for neighbour in neighbours:
            key = (neighbour.need.casefold(), tuple(neighbour.products))
            if key not in best or neighbour.similarity > best[key].similarity:
                best[key] = neighbour
    ranked = sorted(best.values(), key=lambda n: -n.similarity)
    return ranked[:limit]


def kept_count(scores_best_first: Sequence[float], min_score: float, min_products: int) -> int:
    """How many of a ranked list stay: every type scoring at least ``min_score``, and never fewer than
    ``min_products``. The tuner (finetune/tune_fusion.py) applies this same rule."""
    return max(min_products, sum(1 for score in scores_best_first if score >= min_score))


def neighbour_weights(neighbours: Sequence[Neighbour]) -> list[float]:
    """Each neighbour's weight: its cosine (never below 0), less for each closer neighbour ahead of it."""
    return [max(n.similarity, 0.0) * RANK_DECAY**rank for rank, n in enumerate(neighbours)]


def fuse(
    proposals: Sequence[tuple[str, Sequence[str]]],
    neighbours: Sequence[Neighbour],
    prompts: Sequence[str],
    weights: FusionWeights,
    *,
    relevance: Relevance | None = None,
    fuzzy_threshold: float = 90.0,
    semantic_threshold: float | None = 0.85,
    similarity: Similarity | None = None,
) -> list[Suggestion]:
    """Rank the types of the model's ``proposals`` (``(prompt, types)``) and the memory's ``neighbours``.

    ``prompts`` are the need and its paraphrases: the model part is a share of them, and the relevance
    part compares types with them. ``relevance`` defaults to MiniLM; it is skipped when its weight is 0.
    """
    labelled = [((MODEL, prompt), list(products)) for prompt, products in proposals]
    labelled += [((MEMORY, index), list(n.products)) for index, n in enumerate(neighbours)]
    groups = fold_products(
        labelled, fuzzy_threshold=fuzzy_threshold, semantic_threshold=semantic_threshold, similarity=similarity
    )
    if not groups:
        return []
    asked = max(len(prompts), 1)
    neighbour_weight = neighbour_weights(neighbours)
    memory_total = sum(neighbour_weight) or 1.0
    cosines = _relevance([g.product for g in groups], prompts, relevance) if weights.relevance else None

    scored: list[tuple[float, int, Suggestion]] = []
    for index, group in enumerate(groups):
        model_prompts = [label for kind, label in group.sources if kind == MODEL]
        memory_rows = sorted((label for kind, label in group.sources if kind == MEMORY))
        memory_vote = sum(
            neighbour_weight[row] / (1 + POSITION_DECAY * group.positions[(MEMORY, row)]) for row in memory_rows
        )
        parts = {
            "model": round(weights.model * len(model_prompts) / asked, 4),
            "memory": round(weights.memory * memory_vote / memory_total, 4),
        }
        if cosines is not None:
            parts["relevance"] = round(weights.relevance * max(0.0, max(cosines[index], default=0.0)), 4)
        score = round(sum(parts.values()), 4)
        suggestion = Suggestion(
            product=group.product,
            votes=len(model_prompts),
            sources=[str(p) for p in model_prompts],
            neighbours=[neighbours[row].need for row in memory_rows],
            score=score,
            score_parts=parts,
        )
        scored.append((score, group.first_seen, suggestion))
    scored.sort(key=lambda item: (-item[0], item[1]))
    ranked = [suggestion for _, _, suggestion in scored][: weights.max_products]
    return ranked[: kept_count([s.score or 0.0 for s in ranked], weights.min_score, weights.min_products)]


def _relevance(types: Sequence[str], prompts: Sequence[str], relevance: Relevance | None) -> list[list[float]]:
    if not prompts:
        return [[] for _ in types]
    if relevance is None:
        from agent.core.embeddings import cosine_matrix

        return cosine_matrix(types, prompts).tolist()
    return [list(row) for row in relevance(types, prompts)]
