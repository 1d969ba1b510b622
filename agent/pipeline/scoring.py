"""Evaluation metrics: predicted product types against gold product types, per need and overall.

Pure functions on lists of strings and a similarity matrix: no model and no chain here, so every rule can
be tested on hand-made cases (tests/test_metrics.py).

A predicted type matches a gold type when their normalised forms are equal (``agent.pipeline.dedup``'s
``normalize_product``: case, punctuation, plural of the last word) or when their MiniLM cosine is at least
:data:`MATCH_COSINE`. Matching is one-to-one: each gold type and each prediction is used at most once, and
the number of matched pairs is maximised (so "wok" and "large wok" cannot both claim the gold "wok").
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, computed_field

from agent.pipeline.dedup import normalize_product

if TYPE_CHECKING:
    import numpy as np

#: MiniLM cosine at or above which a predicted type matches a gold type (the issue's threshold).
#: Measured pairs: "cast iron skillet"/"cast iron pan" 0.84 and "wireless earbuds"/"bluetooth earbuds"
#: 0.80 match; "garden trowel"/"hand trowel" 0.74 just misses; "garden trowel"/"dog leash" 0.18 does not.
MATCH_COSINE = 0.75
#: How many predictions (the chain's first ones) are scored per need.
TOP_K = 5

#: ``embed(texts)`` -> unit-length row vectors (``agent.core.embeddings.embed`` in real runs).
Embed = Callable[[Sequence[str]], "np.ndarray"]


class NeedScore(BaseModel):
    """The score of one need."""

    # "ignore", not "forbid": a saved result carries the computed hit/precision/recall, and must load back.
    model_config = ConfigDict(extra="ignore")

    need: str
    gold: list[str]
    predicted: list[str] = Field(description="The top predictions scored (at most TOP_K).")
    matches: list[tuple[str, str]] = Field(default_factory=list, description="(prediction, gold) pairs.")
    any_matched: int = Field(
        0, description="Predictions that match some gold type, several predictions per gold type allowed."
    )
    distinct_types: int = Field(0, description="Distinct normalised types among all the chain's predictions.")
    valid: bool = Field(description="The chain returned at least one product type, without error.")
    error: str | None = None
    latency_s: float = 0.0

    @computed_field
    @property
    def hit(self) -> float:
        """1 when at least one prediction matches a gold type."""
        return 1.0 if self.matches else 0.0

    @computed_field
    @property
    def precision(self) -> float:
        """Matched predictions / predictions scored (0 without predictions)."""
        return len(self.matches) / len(self.predicted) if self.predicted else 0.0

    @computed_field
    @property
    def precision_any(self) -> float:
        """Predictions matching any gold type / predictions scored: two spellings of one gold type both
        count here (a listing per spelling is still useful), unlike the one-to-one ``precision``."""
        return self.any_matched / len(self.predicted) if self.predicted else 0.0

    @computed_field
    @property
    def recall(self) -> float:
        """Matched gold types / gold types."""
        return len(self.matches) / len(self.gold) if self.gold else 0.0


class Summary(BaseModel):
    """The figures of a whole evaluation: means over needs (invalid needs score 0)."""

    model_config = ConfigDict(extra="forbid")

    needs: int
    valid_output_rate: float
    hit_at_5: float
    precision_at_5: float
    precision_any_at_5: float = 0.0
    recall_at_5: float
    distinct_types_per_need: float
    latency_mean_s: float
    latency_p50_s: float
    match_cosine: float = MATCH_COSINE


def allowed_matches(predicted: Sequence[str], gold: Sequence[str], similarity: np.ndarray) -> list[list[int]]:
    """For each prediction, the gold types it may match: an equal normalised name, or a cosine
    (``similarity[i, j]``) of at least :data:`MATCH_COSINE`."""
    keys_gold = [normalize_product(g) for g in gold]
    return [
        [j for j in range(len(gold)) if normalize_product(product) == keys_gold[j] or similarity[i, j] >= MATCH_COSINE]
        for i, product in enumerate(predicted)
    ]


def match_pairs(
    predicted: Sequence[str], gold: Sequence[str], similarity: np.ndarray
) -> list[tuple[int, int]]:
    """A maximum one-to-one matching of predictions to gold types, as ``(prediction, gold)`` index pairs.

    ``similarity[i, j]`` is the cosine of ``predicted[i]`` and ``gold[j]``. A pair may match when the
    normalised names are equal or the cosine reaches :data:`MATCH_COSINE`. Candidates are tried best
    first (exact, then by cosine), and augmenting paths (Kuhn's algorithm) make the count maximal.
    """
    allowed = allowed_matches(predicted, gold, similarity)
    keys_gold = [normalize_product(g) for g in gold]
    candidates: list[list[int]] = []
    for i, product in enumerate(predicted):
        key = normalize_product(product)
        candidates.append(sorted(allowed[i], key=lambda j: (key != keys_gold[j], -float(similarity[i, j]))))

    gold_owner: dict[int, int] = {}  # gold index -> prediction index

    def assign(i: int, visited: set[int]) -> bool:
        for j in candidates[i]:
            if j in visited:
                continue
            visited.add(j)
            if j not in gold_owner or assign(gold_owner[j], visited):
                gold_owner[j] = i
                return True
        return False

    for i in range(len(predicted)):
        assign(i, set())
    return sorted((i, j) for j, i in gold_owner.items())


def score_need(
    need: str,
    gold: Sequence[str],
    predicted: Sequence[str],
    similarity: np.ndarray,
    *,
    distinct_types: int | None = None,
    valid: bool | None = None,
    error: str | None = None,
    latency_s: float = 0.0,
) -> NeedScore:
    """Score the (already top-k) ``predicted`` types of one need against its ``gold`` types."""
    pairs = match_pairs(predicted, gold, similarity)
    any_matched = sum(1 for allowed in allowed_matches(predicted, gold, similarity) if allowed)
    return NeedScore(
        need=need,
        gold=list(gold),
        predicted=list(predicted),
        matches=[(predicted[i], gold[j]) for i, j in pairs],
        any_matched=any_matched,
        distinct_types=len({normalize_product(p) for p in predicted})
        if distinct_types is None
        else distinct_types,
        valid=bool(predicted) and error is None if valid is None else valid,
        error=error,
        latency_s=latency_s,
    )


def similarity_matrices(
    predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], embed: Embed
) -> list[np.ndarray]:
    """For each need, the cosine matrix of its predictions (rows) and gold types (columns).

    Every distinct string is embedded once, in one batched call.
    """
    import numpy as np

    texts = sorted({t for group in (*predicted, *gold) for t in group})
    vectors = dict(zip(texts, embed(texts))) if texts else {}
    matrices = []
    for preds, golds in zip(predicted, gold):
        if not preds or not golds:
            matrices.append(np.zeros((len(preds), len(golds))))
            continue
        matrices.append(np.stack([vectors[p] for p in preds]) @ np.stack([vectors[g] for g in golds]).T)
    return matrices


def summarize(scores: Sequence[NeedScore]) -> Summary:
    """Means over needs; a need without a valid output counts 0 for hit, precision and recall."""
    if not scores:
        raise ValueError("no needs were scored")

    def mean(values: Sequence[float]) -> float:
        return round(statistics.fmean(values), 4)

    latencies = [s.latency_s for s in scores]
    return Summary(
        needs=len(scores),
        valid_output_rate=mean([float(s.valid) for s in scores]),
        hit_at_5=mean([s.hit for s in scores]),
        precision_at_5=mean([s.precision for s in scores]),
        precision_any_at_5=mean([s.precision_any for s in scores]),
        recall_at_5=mean([s.recall for s in scores]),
        distinct_types_per_need=mean([float(s.distinct_types) for s in scores]),
        latency_mean_s=mean(latencies),
        latency_p50_s=round(statistics.median(latencies), 4),
    )
