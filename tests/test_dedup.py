"""Folding product types across paraphrases, with votes."""

from __future__ import annotations

import numpy as np
import pytest

from agent.pipeline.dedup import merge_suggestions, normalize_product, singularize
from tests.conftest import exact_similarity


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Garden Trowels", "garden trowel"),
        ("  garden   trowel. ", "garden trowel"),
        ("AA batteries", "aa battery"),
        ("paint brushes", "paint brush"),
        ("painter's tape", "painters tape"),
        ("reading glasses", "reading glasses"),
        ("kitchen scissors", "kitchen scissors"),
        ("yoga-mat", "yoga mat"),
        ("boxes", "box"),
    ],
)
def test_normalize_product(raw: str, key: str) -> None:
    assert normalize_product(raw) == key


def test_singularize_leaves_short_and_latin_words() -> None:
    assert singularize("bus") == "bus" and singularize("gas") == "gas" and singularize("cactus") == "cactus"


def test_votes_count_prompts_not_mentions() -> None:
    suggestions = merge_suggestions(
        [("need", ["trowel", "Trowels", "rake"]), ("p1", ["rake", "gloves"]), ("p2", ["rake"])],
        similarity=exact_similarity,
    )
    assert [(s.product, s.votes, s.sources) for s in suggestions] == [
        ("rake", 3, ["need", "p1", "p2"]),
        ("trowel", 1, ["need"]),
        ("gloves", 1, ["p1"]),
    ]


def test_ties_keep_first_appearance_and_limit_applies() -> None:
    suggestions = merge_suggestions([("need", ["c", "a", "b"])], semantic_threshold=None, limit=2)
    assert [s.product for s in suggestions] == ["c", "a"]


def test_fuzzy_near_duplicates_fold() -> None:
    suggestions = merge_suggestions(
        [("need", ["trowel garden"]), ("p1", ["garden trowel"]), ("p2", ["garden trowl"])],
        semantic_threshold=None,
    )
    assert len(suggestions) == 1 and suggestions[0].votes == 3


def test_semantic_fold_uses_the_similarity_and_threshold() -> None:
    def similarity(texts: list[str]) -> list[list[float]]:
        related = {"shovel", "spade"}
        return [[1.0 if a == b else (0.9 if {a, b} == related else 0.1) for b in texts] for a in texts]

    proposals = [("need", ["shovel", "gloves"]), ("p1", ["spade"])]
    folded = merge_suggestions(proposals, semantic_threshold=0.85, similarity=similarity)
    assert [(s.product, s.votes) for s in folded] == [("shovel", 2), ("gloves", 1)]
    kept = merge_suggestions(proposals, semantic_threshold=0.95, similarity=similarity)
    assert len(kept) == 3


def test_minilm_folds_real_synonyms() -> None:
    folded = merge_suggestions([("need", ["cell phone charger"]), ("p1", ["mobile phone charger", "dog leash"])])
    assert [(s.product, s.votes) for s in folded] == [("cell phone charger", 2), ("dog leash", 1)]


def test_empty_input() -> None:
    assert merge_suggestions([]) == []
    assert merge_suggestions([("need", [])]) == []


def test_a_similarity_matrix_embeds_each_distinct_text_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.core.embeddings

    embedded: list[list[str]] = []
    real_embed = agent.core.embeddings.embed

    def counting_embed(texts):
        embedded.append(list(texts))
        return real_embed(texts)

    monkeypatch.setattr(agent.core.embeddings, "embed", counting_embed)
    left, right = ["shovel", "trowel", "shovel"], ["spade", "shovel"]
    matrix = agent.core.embeddings.cosine_matrix(left, right)

    assert embedded == [["shovel", "trowel", "spade"]]
    assert np.allclose(matrix, real_embed(left) @ real_embed(right).T, atol=1e-5)
