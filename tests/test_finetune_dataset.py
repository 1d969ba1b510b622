"""Training examples are rendered through agent.pipeline.prompts, exactly as inference renders them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.pipeline.prompts import format_paraphrases, format_products, render_prompt
from finetune.dataset import DataError, iter_examples, prompt_completion, read_records
from tests.finetune_helpers import RECORDS, write_records
from tests.tiny_models import make_tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


def test_prompt_is_the_inference_prompt_and_completion_ends_with_eos(tokenizer) -> None:
    example = prompt_completion(tokenizer, "suggest", "trowel, gloves", need="something to dig food")
    assert example["prompt"] == render_prompt(tokenizer, "suggest", need="something to dig food")
    assert example["completion"] == "trowel, gloves" + tokenizer.eos_token
    full = render_prompt(tokenizer, "suggest", answer="trowel, gloves", need="something to dig food")
    assert full.startswith(example["prompt"] + example["completion"])


def test_multi_task_examples(tokenizer, tmp_path: Path) -> None:
    records = read_records(write_records(tmp_path / "train.jsonl"))
    examples = list(iter_examples(records, tokenizer))
    rewrites = [e for e in examples if "rewrites of this need" in e["prompt"]]
    suggests = [e for e in examples if e not in rewrites]
    # every need and every paraphrase -> the need's products
    assert len(suggests) == len(RECORDS) + sum(len(r["paraphrases"]) for r in RECORDS)
    # rewrite only where there are >= 3 paraphrases, asking for exactly that many
    assert len(rewrites) == 2
    first = RECORDS[0]
    expected = prompt_completion(
        tokenizer, "rewrite", format_paraphrases(first["paraphrases"]), need=first["need"], n=3
    )
    assert expected in rewrites
    paraphrase = prompt_completion(
        tokenizer, "suggest", format_products(first["products"]), need=first["paraphrases"][0]
    )
    assert paraphrase in suggests


def test_options_turn_tasks_and_augmentation_off(tokenizer, tmp_path: Path) -> None:
    records = read_records(write_records(tmp_path / "train.jsonl"))
    only_needs = list(iter_examples(records, tokenizer, tasks=["suggest"], paraphrase_augmentation=False))
    assert len(only_needs) == len(RECORDS)
    assert len(list(iter_examples(records, tokenizer, tasks=["rewrite"], min_rewrite_paraphrases=4))) == 1


def test_bad_records_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps({"need": "x"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        read_records(path)
    with pytest.raises(DataError, match="not found"):
        read_records(tmp_path / "missing.jsonl")
