"""Grounded training examples: each training need's neighbours come from the other training rows, never
itself nor a rewording of it, and the examples use exactly the chain's grounded template."""

from __future__ import annotations

import numpy as np
import pytest

from agent.pipeline.prompts import format_neighbours, render_prompt
from finetune.dataset import Record, iter_examples
from finetune.grounding import training_neighbours
from tests.fakes import WordEmbeddings
from tests.tiny_models import make_tiny_tokenizer

RECORDS = [
    Record(need="open a bottle of wine", products=["corkscrew", "wine opener"], paraphrases=["uncork wine"]),
    Record(need="open a bottle of wine quickly", products=["electric wine opener"], paraphrases=[]),  # rewording
    Record(need="wine for a dinner party", products=["wine glasses", "decanter"], paraphrases=[]),
    Record(need="dig food in the garden", products=["garden trowel"], paraphrases=[]),
]


def embed(texts):  # noqa: ANN001, ANN201
    return np.asarray(WordEmbeddings().embed_documents(list(texts)), dtype=np.float32)


def test_a_need_is_never_its_own_neighbour() -> None:
    found = training_neighbours(RECORDS, [(0, RECORDS[0].need)], embed, k=3, exclude_cosine=1.01)
    assert RECORDS[0].need not in [need for need, _ in found[0]]
    assert found[0][0][0] == "open a bottle of wine quickly"  # the nearest other need comes first


def test_needs_within_the_cosine_limit_are_left_out() -> None:
    [near] = training_neighbours(RECORDS, [(0, RECORDS[0].need)], embed, k=3, exclude_cosine=0.9)
    cosine = float((embed([RECORDS[0].need]) @ embed([RECORDS[1].need]).T)[0, 0])
    assert cosine >= 0.9
    assert "open a bottle of wine quickly" not in [need for need, _ in near]
    assert near[0] == ("wine for a dinner party", ["wine glasses", "decanter"])


def test_a_paraphrase_never_sees_a_rewording_of_its_own_need() -> None:
    [near] = training_neighbours(RECORDS, [(0, "uncork wine")], embed, k=3, exclude_cosine=0.9)
    assert [need for need, _ in near][:1] == ["wine for a dinner party"]


@pytest.fixture(scope="module")
def tokenizer():  # noqa: ANN201
    return make_tiny_tokenizer()


def test_grounded_examples_use_the_chains_template(tokenizer) -> None:  # noqa: ANN001
    examples = list(iter_examples(RECORDS, tokenizer, tasks=["suggest_grounded"], embed=embed))
    assert len(examples) == 5  # 4 needs + 1 paraphrase, each with neighbours
    first = examples[0]
    [near] = training_neighbours(RECORDS, [(0, RECORDS[0].need)], embed)
    listed = format_neighbours(near)
    assert first["prompt"] == render_prompt(tokenizer, "suggest_grounded", need=RECORDS[0].need, neighbours=listed)
    assert "- wine for a dinner party: wine glasses, decanter" in first["prompt"]
    assert first["completion"].startswith("corkscrew, wine opener")


def test_plain_and_grounded_examples_can_be_mixed(tokenizer) -> None:  # noqa: ANN001
    examples = list(iter_examples(RECORDS, tokenizer, tasks=["suggest", "suggest_grounded"], embed=embed))
    grounded = sum("Similar needs:" in e["prompt"] for e in examples)
    assert grounded == 5 and len(examples) == 10
