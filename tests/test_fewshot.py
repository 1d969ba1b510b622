"""Few-shot from the need memory: the nearest training needs become earlier chat turns of the suggest
prompt. Fake bag-of-words embeddings stand in for MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agent.core.embeddings
import agent.pipeline.memory
from agent.core.concurrency import Memo
from agent.pipeline.prompts import examples_from_neighbours, render_prompt
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM, WordEmbeddings

TRAIN = [
    {"need": "something to dig with in the garden", "products": ["garden trowel", "kneeling pad"]},
    {"need": "my dog sheds everywhere", "products": ["deshedding brush", "lint roller"]},
    {"need": "first camping trip", "products": ["tent", "sleeping bag"]},
]
#: A test need: few-shot examples must never come from here.
TEST = [{"need": "something to dig food outside", "products": ["leaked answer"]}]


@pytest.fixture
def shipped_splits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split, rows in (("train", TRAIN), ("val", []), ("test", TEST)):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.setattr(agent.pipeline.memory, "shipped_split_path", lambda split: data / f"{split}.jsonl")
    monkeypatch.setattr(agent.core.embeddings, "get_langchain_embeddings", WordEmbeddings)
    monkeypatch.setattr(agent.pipeline.memory, "_memories", Memo())


def test_nearest_needs_come_last_and_the_text_itself_is_skipped() -> None:
    neighbours = [("First camping trip", ["tent"]), ("dig garden", ["trowel", "spade"]), ("dog", ["leash"])]
    examples = examples_from_neighbours("first camping trip", neighbours, k=2)
    assert examples == [({"need": "dog"}, "leash"), ({"need": "dig garden"}, "trowel, spade")]
    assert examples_from_neighbours("anything", neighbours, k=0) == []


def test_examples_render_as_earlier_turns() -> None:
    text = render_prompt(None, "suggest", need="dig food", examples=[({"need": "dig garden"}, "trowel, spade")])
    assert text.index("Need: dig garden") < text.index("trowel, spade") < text.index("Need: dig food")
    assert text.endswith("assistant: ")


def test_chain_shows_the_nearest_training_need_never_a_test_one(shipped_splits: None, isolated_home: Path) -> None:
    from agent.pipeline.chain import build_chain
    from tools.links import LinksBackend

    llm = FakeWhazzatLLM()
    chain = build_chain(llm=llm, backend=LinksBackend(), similarity=exact_similarity, paraphrases=0, fewshot_k=1,
                        memory_mode="model")
    chain.invoke("something to dig food")
    [prompt] = [p for p in llm.prompts if "Need: something to dig food" in p]
    assert "Need: something to dig with in the garden" in prompt and "garden trowel, kneeling pad" in prompt
    assert "leaked answer" not in prompt
