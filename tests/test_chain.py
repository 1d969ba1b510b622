"""The chain with a fake model: stages, batching, results, warnings, callbacks."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from agent.core.concurrency import Memo
from agent.core.errors import InputError
from agent.core.schemas import Recommendation, Suggestion
from agent.pipeline.chain import NO_PARAPHRASE_WARNING, NO_PRODUCT_WARNING, build_chain
from agent.pipeline.state import CHAIN_NAME, STAGES, ChainState
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM
from tools.links import LinksBackend


def make_chain(llm: FakeWhazzatLLM, **overrides):
    return build_chain(llm=llm, backend=LinksBackend(), similarity=exact_similarity, **overrides)


def test_invoke_runs_every_stage(fake_llm: FakeWhazzatLLM) -> None:
    result = make_chain(fake_llm, paraphrases=4).invoke("something to dig food")

    assert isinstance(result, Recommendation)
    assert result.need == "something to dig food"
    # Numbering, quotes and bullets are stripped; the echoed need is not a paraphrase.
    assert result.paraphrases == [
        "a tool for digging in the garden",
        "I need to dig up vegetables",
        "digging food out of the ground",
    ]
    votes = {s.product: s.votes for s in result.suggestions}
    # "garden trowel", "garden trowels" and "Garden Trowel" fold into one product with 4 votes.
    assert votes["garden trowel"] == 4
    assert result.suggestions[0].product == "garden trowel"
    assert [s.votes for s in result.suggestions] == sorted((s.votes for s in result.suggestions), reverse=True)
    assert set(result.suggestions[0].sources) == {
        "something to dig food", "a tool for digging in the garden", "I need to dig up vegetables",
        "digging food out of the ground",
    }
    # One links listing per product type, in vote order, with a URL-encoded Amazon search.
    assert [listing.product for listing in result.listings] == [s.product for s in result.suggestions]
    first = urlparse(result.listings[0].url)
    assert (first.scheme, first.netloc, first.path) == ("https", "www.amazon.com", "/s")
    assert parse_qs(first.query) == {"k": ["garden trowel"]}
    assert {"rewrite", "suggest", "fuse", "search", "rank", "total"} <= result.timings.keys()
    assert result.warnings == []


def test_suggest_prompts_go_in_one_batched_call(fake_llm: FakeWhazzatLLM) -> None:
    make_chain(fake_llm, paraphrases=4).invoke("something to dig food")
    # One generate call for the rewrite, one for all four suggest prompts.
    assert fake_llm.generate_calls == 2
    assert sum("Need:" in prompt for prompt in fake_llm.prompts) == 4


def test_batch_of_needs_batches_the_model_across_needs(fake_llm: FakeWhazzatLLM) -> None:
    needs = ["something to dig food", "a quiet fan for my bedroom", "gift for a dad who loves fishing"]
    results = make_chain(fake_llm, paraphrases=2).batch(needs)
    assert [r.need for r in results] == needs
    assert fake_llm.generate_calls == 2  # rewrite for all needs, then suggest for all prompts


def test_parallel_rewrite_samples_one_line_per_sequence_in_one_call(fake_llm: FakeWhazzatLLM) -> None:
    result = make_chain(fake_llm, paraphrases=3, rewrite_strategy="parallel").invoke("something to dig food")
    rewrite_prompts = [prompt for prompt in fake_llm.prompts if "rewrites of this need" in prompt]
    assert len(rewrite_prompts) == 3 and len(set(rewrite_prompts)) == 1  # the same prompt, sampled 3 times
    assert fake_llm.generate_calls == 2  # all samples in one call, then all suggest prompts in one
    # The samples' first lines: "1. a tool...", "\"I need...\"", "- digging..." cleaned; no echo of the need.
    assert result.paraphrases == [
        "a tool for digging in the garden", "I need to dig up vegetables", "digging food out of the ground",
    ]


def test_parallel_rewrite_batches_across_needs(fake_llm: FakeWhazzatLLM) -> None:
    needs = ["something to dig food", "a quiet fan for my bedroom"]
    results = make_chain(fake_llm, paraphrases=2, rewrite_strategy="parallel").batch(needs)
    assert fake_llm.generate_calls == 2
    assert len(results[0].paraphrases) == 2
    assert NO_PARAPHRASE_WARNING in results[1].warnings  # the fake has no rewrite for it


def test_zero_paraphrases_skips_the_rewrite(fake_llm: FakeWhazzatLLM) -> None:
    result = make_chain(fake_llm, paraphrases=0).invoke("something to dig food")
    assert result.paraphrases == []
    assert fake_llm.generate_calls == 1
    assert result.products[:2] == ["garden trowel", "hand rake"]


def test_unusable_rewrite_goes_on_with_the_need_and_warns() -> None:
    llm = FakeWhazzatLLM(rewrites={"something to dig food": "Here are 4 rewrites:\n\n"})
    result = make_chain(llm, paraphrases=4).invoke("something to dig food")
    assert result.paraphrases == []
    assert NO_PARAPHRASE_WARNING in result.warnings
    assert result.products  # the need alone still got product types


def test_no_products_gives_a_warning_not_an_error() -> None:
    llm = FakeWhazzatLLM(products={}, fallback_products="<script>, http://evil.example")
    result = make_chain(llm, paraphrases=0).invoke("something to dig food")
    assert result.suggestions == [] and result.listings == []
    assert NO_PRODUCT_WARNING in result.warnings


def test_paraphrases_are_capped(fake_llm: FakeWhazzatLLM) -> None:
    result = make_chain(fake_llm, paraphrases=1).invoke("something to dig food")
    assert result.paraphrases == ["a tool for digging in the garden"]


def test_domain_and_top_k_are_honoured(fake_llm: FakeWhazzatLLM) -> None:
    result = make_chain(fake_llm, paraphrases=0, domain="co.uk", top_k=2).invoke("something to dig food")
    assert len(result.listings) == 2
    assert all(listing.url.startswith("https://www.amazon.co.uk/s?k=") for listing in result.listings)


def test_mapping_input_and_bad_input(fake_llm: FakeWhazzatLLM) -> None:
    chain = make_chain(fake_llm, paraphrases=0)
    assert chain.invoke({"need": "  something   to dig food "}).need == "something to dig food"
    with pytest.raises(InputError):
        chain.invoke("   ")


def test_batch_with_a_bad_need_keeps_the_good_ones(fake_llm: FakeWhazzatLLM) -> None:
    results = make_chain(fake_llm, paraphrases=0).batch(["something to dig food", ""], return_exceptions=True)
    assert isinstance(results[0], Recommendation)
    assert isinstance(results[1], InputError)


def test_stream_yields_the_recommendation(fake_llm: FakeWhazzatLLM) -> None:
    chunks = list(make_chain(fake_llm, paraphrases=0).stream("something to dig food"))
    assert isinstance(chunks[-1], Recommendation)


def test_callbacks_see_each_stage_as_a_run(fake_llm: FakeWhazzatLLM) -> None:
    class StageRecorder(BaseCallbackHandler):
        def __init__(self) -> None:
            self.started: list[str] = []

        def on_chain_start(self, serialized, inputs, **kwargs) -> None:  # noqa: ANN001
            self.started.append(kwargs.get("name"))

    recorder = StageRecorder()
    make_chain(fake_llm, paraphrases=2).invoke("something to dig food", config={"callbacks": [recorder]})
    # Every stage but retrieve (the model alone has no memory to look in) runs as its own named run.
    assert [name for name in recorder.started if name in STAGES] == [s for s in STAGES if s != "retrieve"]
    assert CHAIN_NAME in recorder.started


def test_stages_hand_on_one_typed_state_holding_the_models_they_made(fake_llm: FakeWhazzatLLM) -> None:
    class StateRecorder(BaseCallbackHandler):
        def __init__(self) -> None:
            self.names: dict[object, str] = {}
            self.ended: dict[str, object] = {}

        def on_chain_start(self, serialized, inputs, *, run_id, **kwargs) -> None:  # noqa: ANN001
            self.names[run_id] = kwargs.get("name")

        def on_chain_end(self, outputs, *, run_id, **kwargs) -> None:  # noqa: ANN001
            self.ended[self.names[run_id]] = outputs

    recorder = StateRecorder()
    result = make_chain(fake_llm, paraphrases=2).invoke("something to dig food", config={"callbacks": [recorder]})
    states = [recorder.ended[stage] for stage in STAGES if stage != "retrieve"]
    assert all(isinstance(state, ChainState) for state in states)
    assert all(state is states[0] for state in states)  # one object, filled in place
    fused = states[0].suggestions
    assert fused and all(isinstance(s, Suggestion) for s in fused)
    # The recommendation holds the very Suggestion objects the fuse stage made: no dict round trip.
    assert all(a is b for a, b in zip(result.suggestions, fused, strict=True))
    assert all(a is b for a, b in zip(result.listings, states[0].listings, strict=True))


async def test_async_invoke(fake_llm: FakeWhazzatLLM) -> None:
    result = await make_chain(fake_llm, paraphrases=0).ainvoke("something to dig food")
    assert result.products


def test_recommend_reuses_one_chain_per_settings(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeWhazzatLLM) -> None:
    import agent.pipeline.chain

    built: list[object] = []
    real_build = agent.pipeline.chain.build_chain

    def build(settings):  # noqa: ANN001, ANN202
        built.append(settings)
        return real_build(settings, llm=fake_llm, backend=LinksBackend(), similarity=exact_similarity)

    monkeypatch.setattr(agent.pipeline.chain, "_default_chains", Memo())
    monkeypatch.setattr(agent.pipeline.chain, "build_chain", build)
    from agent.pipeline.chain import recommend

    first = recommend("something to dig food", paraphrases=0)
    recommend("a quiet fan for my bedroom", paraphrases=0)
    assert len(built) == 1  # the same settings reuse the chain (and its loaded model)
    recommend("something to dig food", paraphrases=2)
    assert len(built) == 2
    assert first.products[0] == "garden trowel"
    with pytest.raises(TypeError, match="unknown setting"):
        recommend("something to dig food", paraphrase=2)
