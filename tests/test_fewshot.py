"""Retrieval-augmented few-shot: nearest training needs become earlier chat turns of the suggest prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agent.fewshot
from agent.fewshot import FewShotRetriever
from agent.prompts import render_prompt
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM

RECORDS = [
    {"need": "something to dig with in the garden", "products": ["garden trowel", "kneeling pad"]},
    {"need": "my dog sheds everywhere", "products": ["deshedding brush", "lint roller"]},
    {"need": "first camping trip", "products": ["tent", "sleeping bag"]},
]


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> FewShotRetriever:
    path = tmp_path_factory.mktemp("fewshot") / "train.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in RECORDS))
    return FewShotRetriever.from_jsonl(path, cache_dir=path.parent / "cache")


def test_nearest_needs_come_last_with_their_answers(retriever: FewShotRetriever) -> None:
    [examples] = retriever.examples(["a tool for digging vegetables"], k=2)
    assert len(examples) == 2
    assert examples[-1] == ({"need": "something to dig with in the garden"}, "garden trowel, kneeling pad")


def test_the_need_itself_is_never_its_own_example(retriever: FewShotRetriever) -> None:
    [examples] = retriever.examples(["First camping trip"], k=3)
    assert all(values["need"] != "first camping trip" for values, _ in examples)
    assert retriever.examples(["anything"], k=0) == [[]]


def test_embeddings_are_cached_by_file_content(retriever: FewShotRetriever, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in RECORDS))
    FewShotRetriever.from_jsonl(path, cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("fewshot-*.npy"))
    assert len(cached) == 1
    again = FewShotRetriever.from_jsonl(path, cache_dir=tmp_path / "cache")
    assert (again.vectors == retriever.vectors).all()


def test_examples_render_as_earlier_turns() -> None:
    text = render_prompt(None, "suggest", need="dig food", examples=[({"need": "dig garden"}, "trowel, spade")])
    assert text.index("Need: dig garden") < text.index("trowel, spade") < text.index("Need: dig food")
    assert text.endswith("assistant: ")


def test_chain_puts_retrieved_examples_in_every_suggest_prompt(
    retriever: FewShotRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.chain import build_chain
    from tools.links import LinksBackend

    monkeypatch.setattr(agent.fewshot, "default_retriever", lambda home: retriever)
    llm = FakeWhazzatLLM()
    build_chain(llm=llm, backend=LinksBackend(), similarity=exact_similarity, paraphrases=0, fewshot_k=1).invoke(
        "something to dig food"
    )
    [prompt] = [p for p in llm.prompts if "Need: something to dig food" in p]
    assert "Need: something to dig with in the garden" in prompt and "garden trowel, kneeling pad" in prompt
