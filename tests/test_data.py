"""The committed dataset splits satisfy the data rules of issue 3 (schema, size, breadth, no leaks).

Reads the built files only (no rebuild): ``whazzat data build`` regenerates them.
Embeds ~2.4k needs with MiniLM once per session (a few seconds on 2 idle cores).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from finetune.data.build import NEAR_DUPLICATE_COSINE
from finetune.data.clean import clean_product, strip_brands
from finetune.data.schema import NeedRecord, read_records

DATA_DIR = Path(__file__).resolve().parents[1] / "finetune" / "data"


@pytest.fixture(scope="module")
def splits() -> dict[str, list[NeedRecord]]:
    return {name: read_records(DATA_DIR / f"{name}.jsonl") for name in ("train", "val", "test", "seed_test")}


@pytest.fixture(scope="module")
def need_vectors(splits):
    from agent.core.embeddings import embed

    return {name: embed([r.need for r in records]) for name, records in splits.items()}


def test_size_and_breadth(splits) -> None:
    records = splits["train"] + splits["val"] + splits["test"]
    assert len(records) >= 8000
    assert len({r.area for r in records}) >= 60
    assert len({r.need.lower() for r in records}) == len(records), "a need appears twice"
    for name in ("train", "val", "test"):
        areas = Counter(r.area for r in splits[name] if r.source == "written")
        assert len(areas) >= 60, f"{name} covers only {len(areas)} areas"


def test_written_records_have_4_to_8_products(splits) -> None:
    for records in splits.values():
        for record in records:
            low = 4 if record.source == "written" else 2
            assert low <= len(record.products) <= 8, record


def test_paraphrase_pairs_present(splits) -> None:
    records = splits["train"] + splits["val"] + splits["test"]
    assert sum(3 <= len(r.paraphrases) <= 5 for r in records) >= 1500


def test_seed_test_split_is_the_original_61_and_test_only(splits) -> None:
    seed_test = {r.need for r in splits["seed_test"]}
    assert len(seed_test) == 61
    assert all(r.source == "seed" for r in splits["seed_test"])
    assert seed_test <= {r.need for r in splits["test"]}
    assert not seed_test & {r.need for r in splits["train"] + splits["val"]}


@pytest.mark.parametrize("held_out", ["test", "val", "seed_test"])
def test_no_held_out_need_is_a_near_duplicate_of_a_train_need(need_vectors, held_out: str) -> None:
    worst = float((need_vectors[held_out] @ need_vectors["train"].T).max())
    assert worst < NEAR_DUPLICATE_COSINE, f"a {held_out} need is within cosine {worst:.3f} of a train need"


def test_schema_rejects_what_the_rules_forbid() -> None:
    good = {
        "need": "my wrists hurt when typing",
        "products": ["wrist rest", "ergonomic keyboard", "vertical mouse", "keyboard tray"],
        "paraphrases": [],
        "area": "office_work_from_home",
        "source": "written",
    }
    NeedRecord.model_validate(good)
    for bad in (
        {"products": ["wrist rest", "vertical mouse", "keyboard tray"]},  # written: at least 4
        {"products": [f"product {n}" for n in range(9)]},  # at most 8
        {"products": ["Wrist Rest", "ergonomic keyboard", "vertical mouse"]},  # not lowercase
        {"products": ["wrist rest", "logitech mouse", "ergonomic keyboard"]},  # a brand
        {"need": "wrists"},  # too short
        {"products": ["a b c d e f g", "wrist rest", "vertical mouse"]},  # a 7-word product
    ):
        with pytest.raises(ValueError):
            NeedRecord.model_validate(good | bad)


def test_cleaning_fixes_brands_case_and_asides() -> None:
    assert clean_product("KitchenAid Stand Mixer") == "stand mixer"
    assert clean_product("bibimbap toppings (rice, vegetables)") == "bibimbap toppings"
    assert clean_product('"salad bowl') == "salad bowl"
    assert strip_brands("kindle case") == "e-reader case"
    assert strip_brands("yeti") is None
    assert strip_brands("apple corer") == "apple corer"  # no brand: a word that is also a brand name
    assert strip_brands("pom pom maker") == "pom pom maker"


def test_seed_line_parser_handles_the_raw_file_formats() -> None:
    from finetune.data.seed import parse_dataset_line

    assert parse_dataset_line('"Need a Lamp.","Reading Lamp, Desk Lamp"') == (
        "need a lamp",
        ["reading lamp", "desk lamp"],
    )
    assert parse_dataset_line("something to read,reading lamp, book light") == (
        "something to read",
        ["reading lamp", "book light"],
    )
    # a typographic closing quote, and a line cut off mid-item (its fragment is dropped)
    assert parse_dataset_line('"a salad","salad bowl, serve tongs\u201d')[1] == ["salad bowl", "serve tongs"]
    assert parse_dataset_line('"tikka masala","curry pot, tikka')[1] == ["curry pot"]


def test_splits_are_sticky_when_the_data_grows() -> None:
    from collections import Counter as Count

    from finetune.data.build import Candidate, assign_splits

    def written(need: str) -> Candidate:
        products = ["wrist rest", "ergonomic keyboard", "vertical mouse", "keyboard tray"]
        return Candidate(NeedRecord(need=need, products=products, area="office", source="written"))

    old_test, old_train, new_alone, new_near_test, new_bridge = (
        written(f"{word} need about typing at work") for word in ("first", "second", "third", "fourth", "fifth")
    )
    candidates = [old_test, old_train, new_alone, new_near_test, new_bridge]
    previous = {old_test.record.need.casefold(): "test", old_train.record.need.casefold(): "train"}
    # new_near_test is linked to the old test need; new_bridge links an old test and an old train need
    groups = [[0, 3], [1], [2]]
    stats: Count[str] = Count()
    splits = assign_splits(candidates, groups, stats, previous)
    assert old_test.record in splits["test"] and new_near_test.record in splits["test"]
    assert old_train.record in splits["train"]

    bridged = assign_splits(candidates, [[0, 1, 4], [2], [3]], Count(), previous)
    assert old_test.record in bridged["test"] and old_train.record in bridged["train"]
    assert all(new_bridge.record not in records for records in bridged.values())  # dropped, not moved
