"""Parse what the model writes into clean lists. The model's text is untrusted: every parser returns a
list of clean, bounded strings (possibly empty) and never raises for odd input."""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from functools import cache

from agent.core.errors import WhazzatError

MAX_PRODUCT_WORDS = 6
MAX_PRODUCT_CHARS = 60
MAX_PARAPHRASE_CHARS = 200

# "1.", "2)", "-", "*", "•", "–" and similar list markers at the start of a line.
_LIST_MARKER = re.compile(r"^\s*(?:(?:\d{1,2}|[a-zA-Z])[.):]\s+|[-*•·–—>]+\s*)")
_PREAMBLE = re.compile(
    r"^(?:here (?:are|is)|sure|certainly|of course|okay|ok\b|rewrites?\b|paraphrases?\b|"
    r"product types?\b|products?\b|answer\b|need\b|write \d+)",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’«»"
_URL_OR_MARKUP = re.compile(r"https?:|//|www\.|[a-z]{2,}\.[a-z]{2,}|[<>{}\[\]|\\]|\]\(|javascript:", re.IGNORECASE)
# "Product types: a, b": a short label before a colon (not the colon of a URL).
_LABEL = re.compile(r"^\s*[^,:/]{1,40}:\s+(?!//)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def clean_text(text: str) -> str:
    """NFKC-normalised, printable text: control and zero-width characters become spaces, other
    unprintable characters are dropped, whitespace is collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    if not text.isprintable():
        text = "".join(char for char in text if char.isprintable() or char.isspace())
    return " ".join(text.split())


def _strip_marker_and_quotes(line: str) -> str:
    line = _LIST_MARKER.sub("", clean_text(line))
    return line.strip().strip(_QUOTES).strip().rstrip(".;,").strip().strip(_QUOTES).strip()


def _fold(text: str) -> str:
    """A comparison key: case, punctuation and spacing folded."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


_PLACEHOLDER = re.compile(r"{\w+}")


@cache
def _prompt_echoes() -> tuple[frozenset[str], tuple[str, ...]]:
    """Our own prompt templates, folded: their comma/sentence pieces, and their whole texts.

    A small model sometimes repeats its instructions ("most useful first, comma-separated"); such
    pieces must never come back as product types or paraphrases, nor become search keywords.
    """
    from agent.pipeline.prompts import load_template

    pieces: set[str] = set()
    texts: list[str] = []
    for task in ("suggest", "rewrite"):
        try:
            template = load_template(task)
        except WhazzatError:
            continue
        for text in (template.system, template.user):
            # Placeholders ({need}, {n}) split clauses: what fills them is the user's, not ours.
            texts.append(" " + _fold(_PLACEHOLDER.sub(" ", text)) + " ")
            pieces.update(_fold(piece) for piece in re.split(r"{\w+}|[,.:;!?\n]", text))
    pieces.discard("")
    return frozenset(pieces), tuple(texts)


def echoes_prompt(text: str) -> bool:
    """Whether ``text`` repeats our own prompts: it is one of their clauses or a run of 2+ of their
    words, or it contains one of their clauses of 3+ words ("system: Rewrite the shopping need...")."""
    key = _fold(text)
    pieces, texts = _prompt_echoes()
    if key in pieces or (len(key.split()) >= 2 and any(f" {key} " in prompt for prompt in texts)):
        return True
    padded = f" {key} "
    return any(len(piece.split()) >= 3 and f" {piece} " in padded for piece in pieces)


def parse_paraphrases(text: str, need: str, limit: int, echoed: tuple[str, ...] = ()) -> list[str]:
    """Paraphrases of ``need`` from the rewrite answer, at most ``limit``, never including the need itself.

    Drops list markers, quotes, preambles ("Here are..."), lines that echo the prompt (``echoed``),
    empty and duplicate lines.
    """
    if limit <= 0:
        return []
    seen = {_fold(need)} | {_fold(line) for line in echoed}
    paraphrases: list[str] = []
    for raw_line in _split_lines_or_list(text):
        line = _strip_marker_and_quotes(raw_line)
        key = _fold(line)
        if not key or key in seen or len(key) < 3 or len(line) > MAX_PARAPHRASE_CHARS:
            continue
        if line.endswith(":") or _PREAMBLE.match(line) or _URL_OR_MARKUP.search(line) or echoes_prompt(line):
            continue
        seen.add(key)
        paraphrases.append(line)
        if len(paraphrases) == limit:
            break
    return paraphrases


def parse_products(text: str, truncated: bool = False) -> list[str]:
    """Product types from the suggest answer: a Python/JSON list, comma- or newline-separated items.

    With ``truncated`` (generation hit its token limit), the last item may be cut mid-word and is dropped.
    Items are lowercased, 1-6 words, without URLs or markup; duplicates are removed.
    """
    items, cut_off = _split_items(text)
    if (truncated or cut_off) and items:
        items = items[:-1]
    products: list[str] = []
    seen: set[str] = set()
    for item in items:
        product = _clean_product(item)
        if product and _fold(product) not in seen:
            seen.add(_fold(product))
            products.append(product)
    return products


def _split_lines_or_list(text: str) -> list[str]:
    parsed = _literal_list(text)
    if parsed is not None:
        return parsed
    return clean_lines(text)


def clean_lines(text: str) -> list[str]:
    return [line for line in unicodedata.normalize("NFKC", text).splitlines() if line.strip()]


def _split_items(text: str) -> tuple[list[str], bool]:
    """(items, whether the text looks cut off mid-list)."""
    parsed = _literal_list(text)
    if parsed is not None:
        return parsed, False
    stripped = text.strip()
    if stripped.startswith("[") and "]" not in stripped:
        # An unterminated list: the model ran out of tokens inside it.
        return [item for item in re.split(r"[,\n]", stripped.lstrip("[")) if item.strip()], True
    items: list[str] = []
    for line in clean_lines(text):
        line = _LIST_MARKER.sub("", line)
        if line.rstrip().endswith(":") or (_PREAMBLE.match(line.strip()) and "," not in line):
            continue  # "Here are some products:" and the like
        for _ in range(3):  # "Product types: a, b, c"; an echoed "user: Need: tent" has two labels
            line = _LABEL.sub("", line)
        items.extend(item for item in re.split(r"[,;]", line) if item.strip())
    return items, False


def _literal_list(text: str) -> list[str] | None:
    """The strings of the first ``[...]`` list in ``text`` (JSON or Python syntax), if there is one."""
    match = re.search(r"\[.*?\]", text, flags=re.DOTALL)
    if not match:
        return None
    for loader in (json.loads, ast.literal_eval):
        try:
            value = loader(match.group(0))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, list):
            return [str(item) for item in value if isinstance(item, (str, int, float))]
    return None


def _clean_product(item: str) -> str | None:
    product = _strip_marker_and_quotes(item).casefold()
    product = re.sub(r"\s*\(.*?\)\s*", " ", product).strip()  # "(optional)" and the like
    product = " ".join(product.split())
    if not product or _URL_OR_MARKUP.search(product) or not re.search(r"[^\W\d_]", product):
        return None
    if len(product) > MAX_PRODUCT_CHARS or len(product.split()) > MAX_PRODUCT_WORDS:
        return None
    if (_PREAMBLE.match(product) and len(product.split()) > 2) or echoes_prompt(product):
        return None
    return product
