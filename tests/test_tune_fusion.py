"""The fusion tuner's offline grid: it re-ranks the same candidates under each setting, like the fusion."""

from __future__ import annotations

from finetune.tune_fusion import Candidate, rank, search_grid


def candidates() -> list[Candidate]:
    return [
        Candidate(product="wine glasses", parts={"model": 1.0, "memory": 0.0, "relevance": 0.3}, first_seen=0),
        Candidate(product="corkscrew", parts={"model": 0.5, "memory": 0.8, "relevance": 0.6}, first_seen=1),
        Candidate(product="foil cutter", parts={"model": 0.0, "memory": 0.3, "relevance": 0.5}, first_seen=2),
        Candidate(product="decanter", parts={"model": 0.0, "memory": 0.1, "relevance": 0.1}, first_seen=3),
    ]


def test_rank_follows_the_weights_and_the_threshold() -> None:
    model_only = rank(candidates(), {"model": 1.0, "memory": 0.0, "relevance": 0.0}, 0.0, 1)
    assert model_only[0] == "wine glasses"
    memory_heavy = rank(candidates(), {"model": 1.0, "memory": 2.0, "relevance": 0.0}, 0.0, 1)
    assert memory_heavy[0] == "corkscrew"
    assert rank(candidates(), {"model": 1.0, "memory": 2.0, "relevance": 0.0}, 1.0, 1) == ["corkscrew", "wine glasses"]
    assert len(rank(candidates(), {"model": 1.0, "memory": 1.0, "relevance": 0.0}, 9.0, 3)) == 3  # min_products


def test_the_grid_prefers_the_setting_that_finds_the_gold_type() -> None:
    gold = ["corkscrew"]
    matches = {"corkscrew": {0}}
    rows = search_grid([candidates()], [matches], [gold], min_products=1)
    best = rows[0]
    assert best.hit_at_5 == 1.0 and best.precision_at_5 == 1.0  # only corkscrew shown
    assert rows[-1].hit_at_5 + rows[-1].precision_at_5 <= best.hit_at_5 + best.precision_at_5
