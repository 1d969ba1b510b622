"""The parsers of model output: nasty cases by hand, then hypothesis fuzzing."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.pipeline.parsing import MAX_PRODUCT_WORDS, parse_paraphrases, parse_products

NEED = "something to dig food"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("garden trowel, hand rake, kneeling pad", ["garden trowel", "hand rake", "kneeling pad"]),
        ("['garden trowel', 'hand rake']", ["garden trowel", "hand rake"]),
        ('["garden trowel", "hand rake"]', ["garden trowel", "hand rake"]),
        ("[\"painter's tape\", 'drop cloth']", ["painter's tape", "drop cloth"]),
        ("painter's tape, drop cloth", ["painter's tape", "drop cloth"]),
        ("1. Garden Trowel\n2. Hand Rake\n3. Kneeling Pad.", ["garden trowel", "hand rake", "kneeling pad"]),
        ("- trowel\n* rake\n• gloves", ["trowel", "rake", "gloves"]),
        ("Here are some products:\ntrowel, rake", ["trowel", "rake"]),
        ("Product types: trowel, rake, gloves", ["trowel", "rake", "gloves"]),
        ("trowel, trowel, Trowel, rake", ["trowel", "rake"]),
        ("trowel; rake; seed packets", ["trowel", "rake", "seed packets"]),
        ("trowel, http://evil.example/x, <b>rake</b>, rake", ["trowel", "rake"]),
        ("a very long product name that goes on and on forever, rake", ["rake"]),
        ("", []),
        ("   \n\n", []),
        ("123, 456", []),
    ],
)
def test_parse_products(text: str, expected: list[str]) -> None:
    assert parse_products(text) == expected


def test_truncated_answer_drops_the_cut_item() -> None:
    assert parse_products("garden trowel, hand rake, kneel", truncated=True) == ["garden trowel", "hand rake"]
    # An unterminated list is cut off by definition.
    assert parse_products("['garden trowel', 'hand rake', 'knee") == ["garden trowel", "hand rake"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a tool for digging\ndigging up vegetables", ["a tool for digging", "digging up vegetables"]),
        ("1. a tool for digging\n2) digging up vegetables", ["a tool for digging", "digging up vegetables"]),
        ('"a tool for digging"\n\'digging up vegetables\'', ["a tool for digging", "digging up vegetables"]),
        ("Here are 4 rewrites:\n- a tool for digging", ["a tool for digging"]),
        ("Sure! Here you go:\na tool for digging", ["a tool for digging"]),
        ("something to dig food\nSomething to dig food.\na tool for digging", ["a tool for digging"]),
        ("a tool for digging\na tool for digging\nA tool for digging!", ["a tool for digging"]),
        ("['a tool for digging', 'digging up vegetables']", ["a tool for digging", "digging up vegetables"]),
        ("\n\n  \n", []),
        ("Write 4 rewrites of this need: something to dig food\na tool for digging", ["a tool for digging"]),
    ],
)
def test_parse_paraphrases(text: str, expected: list[str]) -> None:
    assert parse_paraphrases(text, NEED, limit=8) == expected


def test_paraphrases_are_capped_and_echoed_prompt_lines_dropped() -> None:
    text = "You are a shopping assistant.\none\ntwo words\nthree words here\nfour words are here"
    assert parse_paraphrases(text, NEED, limit=2, echoed=("You are a shopping assistant.",)) == [
        "one", "two words",
    ]
    assert parse_paraphrases(text, NEED, limit=0) == []


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400), st.booleans())
def test_parse_products_fuzz(text: str, truncated: bool) -> None:
    products = parse_products(text, truncated=truncated)
    assert isinstance(products, list)
    for product in products:
        assert product == product.strip() and product == product.casefold()
        assert 1 <= len(product.split()) <= MAX_PRODUCT_WORDS
        assert "\n" not in product and "http" not in product and "<" not in product
    assert len(products) == len(set(products))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=0, max_value=8))
def test_parse_paraphrases_fuzz(text: str, limit: int) -> None:
    paraphrases = parse_paraphrases(text, NEED, limit=limit)
    assert len(paraphrases) <= limit
    for paraphrase in paraphrases:
        assert paraphrase and paraphrase == paraphrase.strip() and "\n" not in paraphrase
        assert paraphrase.casefold() != NEED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(categories=["L", "Zs"]), min_size=1, max_size=30), max_size=8))
def test_product_lists_round_trip(items: list[str]) -> None:
    """Whatever list of words the model writes as a Python list, the parser keeps words from it."""
    products = parse_products(repr(items))
    words = {word for item in items for word in unicodedata.normalize("NFKC", item).casefold().split()}
    for product in products:
        assert set(product.split()) <= words
