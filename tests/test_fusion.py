"""Fusion of the model's and the memory's product types, and the chain's retrieve and grounded suggest
stages, with a fake model, fake embeddings and an exact-match similarity (no MiniLM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agent.pipeline.memory
from agent.core.schemas import Neighbour
from agent.pipeline.chain import build_chain
from agent.pipeline.fusion import FusionWeights, fuse, merge_neighbours
from agent.pipeline.memory import build_memory
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM, WordEmbeddings


def no_relevance(types, prompts):  # noqa: ANN001, ANN201
    return [[0.0 for _ in prompts] for _ in types]


def neighbour(need: str, products: list[str], similarity: float) -> Neighbour:
    return Neighbour(need=need, products=products, similarity=similarity)


def test_a_type_both_sources_back_ranks_above_a_type_only_one_backs() -> None:
    proposals = [("open wine", ["wine glasses", "corkscrew"]), ("uncork a bottle", ["corkscrew", "wine glasses"])]
    neighbours = [neighbour("thing to uncork wine", ["corkscrew", "wine aerator", "foil cutter"], 0.8)]
    ranked = fuse(
        proposals, neighbours, ["open wine", "uncork a bottle"], FusionWeights(relevance=0.0),
        relevance=no_relevance, semantic_threshold=None,
    )
    products = [s.product for s in ranked]
    assert products[0] == "corkscrew"
    assert products.index("corkscrew") < products.index("wine glasses")  # model only
    assert products.index("corkscrew") < products.index("wine aerator")  # memory only
    corkscrew = ranked[0]
    assert corkscrew.votes == 2 and corkscrew.sources == ["open wine", "uncork a bottle"]
    assert corkscrew.neighbours == ["thing to uncork wine"]
    assert set(corkscrew.score_parts) == {"model", "memory"}
    assert corkscrew.score == pytest.approx(sum(corkscrew.score_parts.values()), abs=1e-3)


def test_near_duplicates_of_the_two_sources_fold_into_one_type() -> None:
    ranked = fuse(
        [("need", ["Wine Openers"])], [neighbour("uncork", ["wine opener"], 0.7)], ["need"],
        FusionWeights(relevance=0.0), semantic_threshold=None,
    )
    assert len(ranked) == 1 and ranked[0].votes == 1 and ranked[0].neighbours == ["uncork"]


def test_weak_types_are_dropped_but_min_products_stay() -> None:
    proposals = [("a", ["strong"]), ("b", ["strong"]), ("c", ["strong", "weak one", "weak two", "weak three"])]
    weights = FusionWeights(model=1.0, memory=0.0, relevance=0.0, min_score=0.5, min_products=2)
    ranked = fuse(proposals, [], ["a", "b", "c"], weights, semantic_threshold=None)
    assert [s.product for s in ranked] == ["strong", "weak one"]  # 'strong' passes; one more for min_products
    assert fuse(proposals, [], ["a", "b", "c"], FusionWeights(min_score=0.0, relevance=0.0), semantic_threshold=None)[3].product == "weak three"


def test_relevance_breaks_a_tie_between_equally_backed_types() -> None:
    def relevance(types, prompts):  # noqa: ANN001, ANN202
        return [[0.9 if t == "corkscrew" else 0.1 for _ in prompts] for t in types]

    ranked = fuse([("wine", ["wine rack", "corkscrew"])], [], ["wine"], FusionWeights(), relevance=relevance,
                  semantic_threshold=None)
    assert [s.product for s in ranked] == ["corkscrew", "wine rack"]
    assert ranked[0].score_parts["relevance"] == pytest.approx(0.45)


def test_a_closer_neighbour_weighs_more_than_a_farther_one() -> None:
    neighbours = [neighbour("near", ["near type"], 0.9), neighbour("far", ["far type"], 0.5)]
    ranked = fuse([], neighbours, ["q"], FusionWeights(model=0.0, relevance=0.0), semantic_threshold=None)
    assert [s.product for s in ranked] == ["near type", "far type"]
    assert ranked[0].votes == 0 and ranked[0].sources == []


def test_neighbours_found_by_several_prompts_are_listed_once_with_their_best_cosine() -> None:
    merged = merge_neighbours(
        [[neighbour("a", ["x"], 0.5), neighbour("b", ["y"], 0.4)], [neighbour("a", ["x"], 0.7)]], limit=5
    )
    assert [(n.need, n.similarity) for n in merged] == [("a", 0.7), ("b", 0.4)]
    assert len(merge_neighbours([[neighbour(str(i), ["x"], 0.1 * i) for i in range(9)]], limit=3)) == 3


# --- the chain with a memory -------------------------------------------------------------------------------


@pytest.fixture
def wine_memory(isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"need": "tool to open a wine bottle", "products": ["corkscrew", "wine opener", "foil cutter"]},
        {"need": "dig food in the garden", "products": ["garden trowel", "harvest basket"]},
    ]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(agent.pipeline.memory, "shipped_split_path", lambda split: data / f"{split}.jsonl")
    return build_memory(isolated_home, splits=("train",), embeddings=WordEmbeddings())


def fused_chain(llm: FakeWhazzatLLM, memory, **settings):  # noqa: ANN001, ANN003, ANN201
    return build_chain(
        llm=llm, backend="links", similarity=exact_similarity, memory=memory, relevance=no_relevance,
        memory_mode=settings.pop("memory_mode", "fused"), **settings,
    )


def test_the_chain_grounds_each_prompt_with_its_neighbours(fake_llm: FakeWhazzatLLM, wine_memory) -> None:
    fake_llm.products = {"open a bottle of wine": "wine glasses, corkscrew"}
    result = fused_chain(fake_llm, wine_memory, paraphrases=0).invoke("open a bottle of wine")
    assert result.neighbours[0].need == "tool to open a wine bottle"
    grounded = [p for p in fake_llm.prompts if "Similar needs:" in p]
    assert grounded and "- tool to open a wine bottle: corkscrew, wine opener, foil cutter" in grounded[0]
    assert result.products[0] == "corkscrew"  # the model and the memory back it; wine glasses only the model
    corkscrew = result.suggestions[0]
    assert corkscrew.neighbours == ["tool to open a wine bottle"] and corkscrew.votes == 1
    assert corkscrew.score_parts["memory"] > 0 and corkscrew.score_parts["model"] > 0
    assert "retrieve" in result.timings


def test_memory_mode_makes_no_suggest_call(fake_llm: FakeWhazzatLLM, wine_memory) -> None:
    result = fused_chain(fake_llm, wine_memory, paraphrases=0, memory_mode="memory").invoke("open a bottle of wine")
    assert fake_llm.generate_calls == 0
    assert result.products[:3] == ["corkscrew", "wine opener", "foil cutter"]
    assert all(s.votes == 0 for s in result.suggestions)


def test_model_mode_sends_the_plain_prompt_and_retrieves_nothing(fake_llm: FakeWhazzatLLM, wine_memory) -> None:
    result = fused_chain(fake_llm, wine_memory, paraphrases=0, memory_mode="model").invoke("open a bottle of wine")
    assert not any("Similar needs:" in p for p in fake_llm.prompts)
    assert result.neighbours == [] and result.products == ["notebook", "pen", "desk lamp"]


def test_a_batch_retrieves_for_each_need_and_paraphrase(fake_llm: FakeWhazzatLLM, wine_memory) -> None:
    searched: list[list[str]] = []
    real_search = wine_memory.search

    def spy(queries, k):  # noqa: ANN001, ANN202
        searched.append(list(queries))
        return real_search(queries, k)

    wine_memory.search = spy
    results = fused_chain(fake_llm, wine_memory, paraphrases=2).batch(["something to dig food", "open a bottle of wine"])
    assert len(searched) == 1  # one search for the whole batch
    assert "something to dig food" in searched[0] and "open a bottle of wine" in searched[0]
    assert results[0].neighbours[0].need == "dig food in the garden"
    assert results[1].neighbours[0].need == "tool to open a wine bottle"


def test_only_the_needs_prompt_can_be_grounded(fake_llm: FakeWhazzatLLM, wine_memory) -> None:
    result = fused_chain(fake_llm, wine_memory, paraphrases=2, grounded_prompts="need").invoke("something to dig food")
    grounded = [p for p in fake_llm.prompts if "Similar needs:" in p]
    assert len(grounded) == 1 and "Need: something to dig food" in grounded[0]
    assert len(result.paraphrases) == 2 and result.neighbours  # paraphrases still retrieve and vote


def test_the_embedding_table_embeds_once_and_looks_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    import agent.core.embeddings
    from agent.core.embeddings import EmbeddingTable

    calls: list[list[str]] = []

    def fake_embed(texts):  # noqa: ANN001, ANN202
        calls.append(list(texts))
        return np.asarray(WordEmbeddings().embed_documents(list(texts)), dtype=np.float32)

    monkeypatch.setattr(agent.core.embeddings, "embed", fake_embed)
    table = EmbeddingTable.of(["corkscrew", "wine opener", "open wine"])
    cosine = table.cosine(["corkscrew", "wine opener"], ["open wine"])
    assert cosine.shape == (2, 1) and cosine[1, 0] > cosine[0, 0]
    assert len(calls) == 1  # every lookup came from the one batched call
    table.similarity(["dog leash"])  # a text it does not hold is embedded on the spot
    assert calls[-1] == ["dog leash"]


def test_prompts_of_similar_length_share_a_batch_and_answers_keep_their_order(fake_llm: FakeWhazzatLLM, wine_memory) -> None:
    fake_llm.products = {"something to dig food": "garden trowel", "a tool for digging in the garden": "shovel"}
    results = fused_chain(fake_llm, wine_memory, paraphrases=2, grounded_prompts="need", fusion_min_score=0.0).batch(
        ["something to dig food", "open a bottle of wine"]
    )
    grounded_first = [i for i, p in enumerate(fake_llm.prompts) if "Similar needs:" in p]
    plain = [i for i, p in enumerate(fake_llm.prompts) if "Similar needs:" not in p and "rewrites" not in p]
    assert max(plain) < min(grounded_first)  # the short (plain) prompts went together, before the long ones
    by_type = {s.product: s.sources for s in results[0].suggestions}
    assert by_type["garden trowel"] == ["something to dig food"]  # each answer went back to its own prompt
    assert by_type["shovel"] == ["a tool for digging in the garden"]


def test_the_terminal_shows_each_fused_types_score_and_the_needs_behind_it() -> None:
    from rich.console import Console

    from agent.cli.render import print_recommendation
    from agent.core.schemas import Recommendation, Suggestion

    result = Recommendation(
        need="open a bottle of wine",
        suggestions=[Suggestion(product="corkscrew", votes=1, neighbours=["tool to open a wine bottle"], score=0.91,
                                score_parts={"model": 0.25, "memory": 0.5, "relevance": 0.16})],
    )
    console = Console(record=True, width=140)
    print_recommendation(result, console)
    text = console.export_text()
    assert "corkscrew" in text and "0.91" in text and "tool to open a wine bottle" in text


def test_the_ui_cards_say_what_backs_a_fused_type() -> None:
    from agent.core.schemas import Suggestion
    from agent.ui.cards import render_why, votes_label

    corkscrew = Suggestion(product="corkscrew", votes=2, sources=["open wine"], neighbours=["tool to open a wine bottle"],
                           score=0.91, score_parts={"model": 0.25, "memory": 0.5, "relevance": 0.16})
    assert votes_label(corkscrew, 5) == "score 0.91 · 2 of 5 phrasings · 1 similar need"
    why = render_why("open wine", ["uncork a bottle"], [corkscrew])
    assert "suggested for your words" in why and "similar needs like *tool to open a wine bottle*" in why
