"""Speed levers of the chain that change what it does per need (kept only when ``whazzat eval`` shows no
quality loss): skipping the rewrite of a need the memory already knows, and looking the memory up with
the need alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.core.schemas import Neighbour
from agent.pipeline.chain import build_chain
from tests.fakes import FakeWhazzatLLM, asked_need

KNOWN = "something to dig food"
UNKNOWN = "a quiet fan for my bedroom"


class ExactMemory:
    """A need memory that knows one need: an exact match is 1.0 close, anything else 0.2."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def search(self, queries: Sequence[str], k: int) -> list[list[Neighbour]]:
        self.queries.extend(queries)
        return [[Neighbour(need=KNOWN, products=["garden trowel", "hand rake"], similarity=1.0 if q == KNOWN else 0.2,
                           source="dataset", query=q)] for q in queries]


def chain(llm: FakeWhazzatLLM, memory: ExactMemory, **overrides: object):
    return build_chain(llm=llm, memory=memory, backend="links", memory_mode="fused", paraphrases=3,
                       semantic_dedup=False, **overrides)


def test_a_need_the_memory_knows_is_not_paraphrased() -> None:
    llm, memory = FakeWhazzatLLM(prompts=[], rewrite_calls={}), ExactMemory()

    result = chain(llm, memory, rewrite_skip_similarity=0.9).invoke(KNOWN)

    assert llm.rewrite_calls == {}  # no rewrite prompt reached the model
    assert result.paraphrases == []
    assert len(llm.prompts) == 1  # the need's own (grounded) suggest prompt only
    assert memory.queries == [KNOWN]  # looked up once, not again by the retrieve stage
    assert "garden trowel" in result.products


def test_a_need_the_memory_does_not_know_is_paraphrased_as_before() -> None:
    llm = FakeWhazzatLLM(prompts=[], rewrite_calls={}, rewrites={UNKNOWN: "a silent fan\nfan for sleeping"})
    memory = ExactMemory()

    result = chain(llm, memory, rewrite_skip_similarity=0.9).invoke(UNKNOWN)

    assert llm.rewrite_calls[UNKNOWN] >= 1
    assert result.paraphrases
    assert memory.queries == [UNKNOWN]  # looked up once; by default paraphrases are not looked up


def test_by_default_only_the_need_looks_up_the_memory_and_paraphrases_still_vote() -> None:
    llm = FakeWhazzatLLM(prompts=[], rewrites={UNKNOWN: "a silent fan\nfan for sleeping"})
    memory = ExactMemory()

    result = chain(llm, memory).invoke(UNKNOWN)

    assert memory.queries == [UNKNOWN]
    assert result.paraphrases == ["a silent fan", "fan for sleeping"]
    assert all(any(text in prompt for prompt in llm.prompts) for text in result.paraphrases)  # they still ask


def test_memory_queries_all_looks_up_every_paraphrase_too() -> None:
    llm = FakeWhazzatLLM(prompts=[], rewrites={UNKNOWN: "a silent fan\nfan for sleeping"})
    memory = ExactMemory()

    chain(llm, memory, memory_queries="all").invoke(UNKNOWN)

    assert memory.queries == [UNKNOWN, "a silent fan", "fan for sleeping"]


def test_in_a_batch_only_the_known_need_skips_its_rewrite() -> None:
    llm, memory = FakeWhazzatLLM(prompts=[], rewrite_calls={}, rewrites={UNKNOWN: "a silent fan"}), ExactMemory()

    known, unknown = chain(llm, memory, rewrite_skip_similarity=0.9).batch([KNOWN, UNKNOWN])

    assert known.paraphrases == [] and unknown.paraphrases == ["a silent fan"]
    assert KNOWN not in llm.rewrite_calls


def test_by_default_every_need_is_paraphrased() -> None:
    llm, memory = FakeWhazzatLLM(prompts=[], rewrite_calls={}), ExactMemory()

    result = chain(llm, memory).invoke(KNOWN)

    assert llm.rewrite_calls[KNOWN] >= 1
    assert result.paraphrases


# --- the need's own suggest prompt decoded with its rewrite (need_prompt_with_rewrite, opt-in) --------------
class CallRecordingLLM(FakeWhazzatLLM):
    """The fake model, recording the prompts and the token limit of each generate call."""

    calls: list[tuple[list[str], int | None]] = []  # noqa: RUF012 (a pydantic field: copied per instance)
    tokenizer: Any = None

    def _generate(
        self, prompts: list[str], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        # run_manager named: LangChain hands the other keywords (pipeline_kwargs) only to such a signature.
        self.calls.append((list(prompts), kwargs.get("pipeline_kwargs", {}).get("max_new_tokens")))
        return super()._generate(prompts, stop, run_manager)


def _is_rewrite(prompt: str) -> bool:
    return "rewrites of this need" in prompt


def test_the_needs_own_prompt_is_decoded_with_its_rewrite_and_the_paraphrases_follow() -> None:
    llm = CallRecordingLLM(calls=[], rewrites={UNKNOWN: "a silent fan\nfan for sleeping"})

    result = chain(llm, ExactMemory(), need_prompt_with_rewrite=True, max_new_tokens_rewrite=90,
                   max_new_tokens_suggest=30).invoke(UNKNOWN)

    (first, first_limit), (second, second_limit) = llm.calls
    assert sorted(map(_is_rewrite, first)) == [False, True]  # the rewrite and the need's suggest prompt
    need_prompt = next(p for p in first if not _is_rewrite(p))
    assert asked_need(need_prompt) == UNKNOWN and "garden trowel" in need_prompt  # grounded
    assert first_limit == 90  # the longer of the two limits; the need's answer is cut to its own after
    assert second_limit == 30 and sorted(map(asked_need, second)) == ["a silent fan", "fan for sleeping"]
    assert result.paraphrases == ["a silent fan", "fan for sleeping"]


def test_asking_the_need_with_its_rewrite_gives_the_same_answer_as_asking_it_after() -> None:
    rewrites = {KNOWN: "a tool for digging in the garden\nI need to dig up vegetables", UNKNOWN: "a silent fan"}
    answers = {}
    for together in (True, False):
        llm = CallRecordingLLM(calls=[], rewrites=rewrites)
        answers[together] = chain(llm, ExactMemory(), need_prompt_with_rewrite=together).batch([KNOWN, UNKNOWN])
        assert len(llm.calls) == 2  # a batch of needs still takes two generate calls
    for with_rewrite, after in zip(answers[True], answers[False], strict=True):
        assert with_rewrite.paraphrases == after.paraphrases
        assert [(s.product, s.votes) for s in with_rewrite.suggestions] == [
            (s.product, s.votes) for s in after.suggestions
        ]


def test_the_needs_answer_is_cut_to_the_suggest_token_limit() -> None:
    from tests.tiny_models import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    many = ", ".join(f"garden tool {i}" for i in range(30))
    limit = 12
    cut = tokenizer.decode(tokenizer(many, add_special_tokens=False)["input_ids"][:limit])
    assert len(cut) < len(many) / 3
    llm = CallRecordingLLM(calls=[], tokenizer=tokenizer, products={UNKNOWN: many}, rewrites={UNKNOWN: "a silent fan"})

    result = build_chain(llm=llm, backend="links", memory_mode="model", paraphrases=1, semantic_dedup=False,
                         need_prompt_with_rewrite=True, max_new_tokens_suggest=limit, max_products=20).invoke(UNKNOWN)

    kept = [p for p in result.products if p.startswith("garden tool")]
    assert kept and all(p in cut for p in kept)  # only what fits in `limit` tokens, the cut-off item dropped
    assert llm.calls[0][1] == 96  # decoded with the rewrite's limit, then cut


def test_a_sampled_rewrite_leaves_the_needs_prompt_to_the_suggest_call() -> None:
    llm = CallRecordingLLM(calls=[], rewrites={UNKNOWN: "a silent fan\nfan for sleeping"})

    chain(llm, ExactMemory(), rewrite_strategy="parallel", need_prompt_with_rewrite=True).invoke(UNKNOWN)

    (first, _), (second, _) = llm.calls
    assert all(map(_is_rewrite, first))
    assert UNKNOWN in map(asked_need, second)


def test_by_default_the_needs_prompt_waits_for_the_suggest_call() -> None:
    llm = CallRecordingLLM(calls=[], rewrites={UNKNOWN: "a silent fan"})

    chain(llm, ExactMemory()).invoke(UNKNOWN)

    (first, _), (second, _) = llm.calls
    assert all(map(_is_rewrite, first))
    assert sorted(map(asked_need, second)) == ["a quiet fan for my bedroom", "a silent fan"]
