"""Checks on what users type, shared by the CLI, the Python API, batch rows and the UI.

What a need may contain, and what happens to the rest:

* ordinary text in any language and script, emoji included: kept (NFKC-normalised, whitespace collapsed);
* invisible characters (zero-width spaces and joiners, direction marks, soft hyphens, Unicode "tag"
  characters that can smuggle hidden instructions; every format character, category Cf): removed;
* pasted HTML: tags and comments are removed and entities decoded (``<b>garden</b> &amp; yard`` becomes
  ``garden & yard``); the text between tags is kept as words;
* chat-format control tokens (``<|im_start|>``, ``[INST]``, ``<<SYS>>``, ``<s>``): removed, so a need can
  never open a new turn of the model's chat template;
* a pasted URL: kept as text. The model reads it like any other words; nothing is fetched, and what the
  model answers is cleaned like every other answer before it becomes a search keyword;
* control characters (a pasted binary, a terminal escape) and lone surrogates (not text at all): refused;
* empty once cleaned, or over :data:`~agent.core.config.MAX_NEED_CHARS` characters: refused.

Refusals are :class:`~agent.core.errors.InputError` with a message that says what to change. Cleaning is
idempotent: a cleaned need comes back unchanged, so every door (batch rows, then the chain) agrees on it.
"""

from __future__ import annotations

import html
import re
import unicodedata

from agent.core.config import MAX_NEED_CHARS
from agent.core.errors import InputError

#: Longest raw input looked at: pasted HTML is verbose, but anything longer cannot clean down to a need.
MAX_RAW_CHARS = 20 * MAX_NEED_CHARS

# C0/C1 control characters other than ordinary whitespace: a pasted binary or terminal escape.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Line and paragraph separators are not format characters, but are just as unwanted inside a need.
_SEPARATORS = re.compile(r"[\u2028\u2029]")
# HTML tags (<b>, </p>, <img src=...>, <br/>), declarations (<!DOCTYPE html>) and comments. Bounded
# repetitions keep the patterns linear however hostile the text; "a < b", "<3" and "x<y" are not tags.
_HTML_COMMENT = re.compile(r"<!--.{0,2000}?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]{0,40}(?:\s[^<>]{0,1000})?/?>|<![A-Za-z][^<>]{0,1000}>")
# Only entities with their final ';' (html.unescape alone would turn "&notebook" into "¬ebook").
_HTML_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Chat-template control tokens: ChatML/SmolLM2 "<|im_start|>", Llama-3 "<|eot_id|>", Llama-2 "[INST]" and
# "<<SYS>>" ("<s>" is an HTML-like tag, removed above).
_CHAT_TOKEN = re.compile(r"<\|[^<>|\s]{1,64}\|>|\[/?INST\]|<</?SYS>>", re.IGNORECASE)
#: Cleaning can uncover more to clean ("&amp;lt;b&amp;gt;" decodes to a tag): rounds until nothing changes.
_MAX_ROUNDS = 8


def validate_need(need: object) -> str:
    """The need, cleaned as the module docstring says, or an InputError that says what to change."""
    if not isinstance(need, str):
        raise InputError(f"the need must be text, not {type(need).__name__}")
    if len(need) > MAX_RAW_CHARS:
        raise InputError(_too_long(len(need)))
    if _SURROGATE.search(need):
        raise InputError("the need is not valid text (it holds broken characters); type it as plain text")
    if _CONTROL.search(need):
        raise InputError("the need contains control characters; type it as plain text")
    cleaned = need
    for _ in range(_MAX_ROUNDS):
        again = _clean(cleaned)
        if again == cleaned:
            break
        cleaned = again
    else:
        raise InputError("the need is wrapped in too many layers of HTML; type it as plain text")
    if _CONTROL.search(cleaned) or _SURROGATE.search(cleaned):  # decoded from an entity such as "&#7;"
        raise InputError("the need contains control characters; type it as plain text")
    if not cleaned:
        markup = " once its HTML and invisible characters are removed" if need.strip() else ""
        raise InputError(f"the need is empty{markup}; describe what you need, e.g. 'something to dig food'")
    if len(cleaned) > MAX_NEED_CHARS:
        raise InputError(_too_long(len(cleaned)))
    return cleaned


def _clean(text: str) -> str:
    """One round of cleaning: markup and chat tokens out, NFKC, invisible characters out, spaces collapsed."""
    text = _CHAT_TOKEN.sub(" ", text)  # before tags: "<<SYS>>" holds the tag-like "<SYS>"
    text = _HTML_COMMENT.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = _HTML_ENTITY.sub(lambda match: html.unescape(match.group(0)), text)
    text = unicodedata.normalize("NFKC", text)
    text = _SEPARATORS.sub(" ", text)
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    return " ".join(text.split())


def _too_long(length: int) -> str:
    return (
        f"the need is {length} characters long; keep it under {MAX_NEED_CHARS} "
        "(one or two sentences are enough)"
    )
