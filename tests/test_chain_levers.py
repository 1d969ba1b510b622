"""Speed levers of the chain that change what it does per need (kept only when ``whazzat eval`` shows no
quality loss): skipping the rewrite of a need the memory already knows, and looking the memory up with
the need alone."""

from __future__ import annotations

from collections.abc import Sequence

from agent.core.schemas import Neighbour
from agent.pipeline.chain import build_chain
from tests.fakes import FakeWhazzatLLM

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
