"""Merge the product types proposed for each prompt (the need and its paraphrases) into one voted list.

Three folds, cheapest first: a normalised key (case, whitespace, punctuation, plurals), near-duplicates
by rapidfuzz's token-sort ratio ("trowel garden" ~ "garden trowel"), and semantic duplicates by MiniLM
cosine ("hand shovel" ~ "garden shovel"). A product type's votes are the number of prompts that proposed
it: agreement across paraphrases is the consensus signal the ranking uses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from agent.core.schemas import Suggestion

# Plural endings folded to the singular, longest first; "glasses" and "scissors" style words stay.
_KEEP_AS_IS = {"glasses", "scissors", "pants", "shorts", "jeans", "tongs", "pliers", "leggings", "goggles",
               "headphones", "earphones", "earbuds", "binoculars", "tweezers", "clothes", "shoes", "news"}
_PLURAL_RULES: tuple[tuple[str, str], ...] = (
    ("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("sses", "ss"), ("xes", "x"), ("zes", "z"),
    ("oes", "o"), ("ves", "f"), ("s", ""),
)


def singularize(word: str) -> str:
    """A light English singular: enough to fold 'batteries'/'battery', 'brushes'/'brush', 'pans'/'pan'."""
    if word in _KEEP_AS_IS or len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    for suffix, replacement in _PLURAL_RULES:
        if word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    return word


def normalize_product(product: str) -> str:
    """The comparison key of a product type: casefolded, punctuation and extra spaces removed, and the
    head noun (last word) in the singular."""
    text = unicodedata.normalize("NFKC", product).casefold().replace("'", "").replace("’", "")
    words = re.sub(r"[^\w\s]|_", " ", text).split()
    if words:
        words[-1] = singularize(words[-1])
    return " ".join(words)


Similarity = Callable[[Sequence[str]], list[list[float]]]


@dataclass
class ProductGroup:
    """One product type after folding: its shown spelling and every source that proposed a spelling of it."""

    product: str  # the first spelling seen, shown to users
    key: str
    first_seen: int
    sources: list[Hashable] = field(default_factory=list)
    #: Each source's best (lowest) position of this type in its own list, most useful first.
    positions: dict[Hashable, int] = field(default_factory=dict)


def fold_products(
    proposals: Sequence[tuple[Hashable, Sequence[str]]],
    *,
    fuzzy_threshold: float = 90.0,
    semantic_threshold: float | None = 0.85,
    similarity: Similarity | None = None,
) -> list[ProductGroup]:
    """Fold ``(source, products)`` pairs into groups of the same product type, in first-appearance order.

    A source is any label (a prompt, a known need...). ``similarity`` returns the pairwise cosine matrix
    of product strings (MiniLM by default, lazily); ``semantic_threshold=None`` skips the semantic fold.
    """
    groups: list[ProductGroup] = []
    by_key: dict[str, ProductGroup] = {}
    order = 0
    for source, products in proposals:
        for position, product in enumerate(products):
            key = normalize_product(product)
            if not key:
                continue
            group = by_key.get(key) or _find_fuzzy(groups, key, fuzzy_threshold)
            if group is None:
                group = ProductGroup(product=product, key=key, first_seen=order)
                groups.append(group)
                order += 1
            by_key[key] = group
            if source not in group.sources:
                group.sources.append(source)
            group.positions[source] = min(position, group.positions.get(source, position))
    if semantic_threshold is not None and len(groups) > 1:
        groups = _fold_semantic(groups, semantic_threshold, similarity or _minilm_similarity)
    return groups


def merge_suggestions(
    proposals: Sequence[tuple[str, Sequence[str]]],
    *,
    fuzzy_threshold: float = 90.0,
    semantic_threshold: float | None = 0.85,
    similarity: Similarity | None = None,
    limit: int | None = None,
) -> list[Suggestion]:
    """Fold ``(prompt, products)`` pairs into suggestions ordered by votes, then first appearance."""
    groups = fold_products(
        proposals, fuzzy_threshold=fuzzy_threshold, semantic_threshold=semantic_threshold, similarity=similarity
    )
    groups.sort(key=lambda group: (-len(group.sources), group.first_seen))
    suggestions = [
        Suggestion(product=g.product, votes=len(g.sources), sources=[str(s) for s in g.sources]) for g in groups
    ]
    return suggestions[:limit] if limit is not None else suggestions


def _find_fuzzy(groups: list[ProductGroup], key: str, threshold: float) -> ProductGroup | None:
    for group in groups:
        if fuzz.token_sort_ratio(group.key, key) >= threshold:
            return group
    return None


def _fold_semantic(groups: list[ProductGroup], threshold: float, similarity: Similarity) -> list[ProductGroup]:
    """Fold each group into the earliest group it is semantically equal to (a greedy, stable pass)."""
    matrix = similarity([group.key for group in groups])
    kept: list[int] = []
    for index, group in enumerate(groups):
        target = next((k for k in kept if matrix[k][index] >= threshold), None)
        if target is None:
            kept.append(index)
            continue
        kept_group = groups[target]
        for source in group.sources:
            if source not in kept_group.sources:
                kept_group.sources.append(source)
            position = group.positions[source]
            kept_group.positions[source] = min(position, kept_group.positions.get(source, position))
    return [groups[index] for index in kept]


def _minilm_similarity(texts: Sequence[str]) -> list[list[float]]:
    from agent.core.embeddings import cosine_matrix

    return cosine_matrix(texts, texts).tolist()
