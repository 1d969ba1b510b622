import pytest

from agent.core.errors import InputError
from agent.pipeline.validation import validate_need


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("something to dig food", "something to dig food"),
        ("  something\tto\n dig   food  ", "something to dig food"),
        ("some\u200bthing to dig food", "something to dig food"),
        ("ｓｏｍｅｔｈｉｎｇ", "something"),
        ("cadeau pour un papa qui aime la pêche 🎣", "cadeau pour un papa qui aime la pêche 🎣"),
    ],
)
def test_valid_needs_are_cleaned(raw: str, clean: str) -> None:
    assert validate_need(raw) == clean


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("\u200b\u200b", "empty"),
        ("x" * 501, "under 500"),
        ("dig\x00food", "control characters"),
        ("dig\x1b[31mfood", "control characters"),
        (None, "must be text"),
    ],
)
def test_bad_needs_raise_input_error(raw: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate_need(raw)
