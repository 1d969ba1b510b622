"""Checks on what users type, shared by the CLI, the Python API, batch rows and the UI."""

from __future__ import annotations

import re
import unicodedata

from agent.config import MAX_NEED_CHARS
from agent.errors import InputError

# C0/C1 control characters other than ordinary whitespace: a pasted binary or terminal escape.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Zero-width and direction marks: invisible, harmless, removed.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def validate_need(need: object) -> str:
    """The need, cleaned (NFKC, invisible characters removed, whitespace collapsed), or an InputError
    that says what to change."""
    if not isinstance(need, str):
        raise InputError(f"the need must be text, not {type(need).__name__}")
    if _CONTROL.search(need):
        raise InputError("the need contains control characters; type it as plain text")
    cleaned = " ".join(_INVISIBLE.sub("", unicodedata.normalize("NFKC", need)).split())
    if not cleaned:
        raise InputError("the need is empty; describe what you need, e.g. 'something to dig food'")
    if len(cleaned) > MAX_NEED_CHARS:
        raise InputError(
            f"the need is {len(cleaned)} characters long; keep it under {MAX_NEED_CHARS} "
            "(one or two sentences are enough)"
        )
    return cleaned
