"""Markdown for answers: product cards grouped by product type, and the "why" behind them.

Everything that comes from outside (listing titles from a marketplace API, the model's product types and
paraphrases, the user's own words) goes through :func:`escape_text`, so it is shown as text and can never
become a link, an image, a table cell or markup. Links and images are emitted only for http(s) URLs, and
those are percent-encoded so they cannot break out of the Markdown link syntax. The browser shows the same
listings as real cards too (:mod:`agent.ui.card_element`, built with the helpers here); this Markdown stays
the message's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlsplit

from agent.core.schemas import Listing, Suggestion
from agent.pipeline.dedup import normalize_product

#: Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping all of them keeps
#: text from starting lists, headings, emphasis, links, autolinks ("www.", "http:") or table cells.
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
#: Characters allowed unencoded in the URLs we emit; parentheses, spaces, quotes and angle brackets are
#: percent-encoded because they could end a Markdown link destination.
_URL_SAFE = "/?#[]@!$&*+,;=%~:-._"

#: Currency symbol per Amazon domain, for prices (the APIs give bare numbers).
CURRENCY = {"com": "$", "ca": "C$", "co.uk": "£", "de": "€", "fr": "€", "it": "€", "es": "€", "in": "₹",
            "co.jp": "¥", "com.au": "A$"}
TITLE_CHARS = 160


def one_line(text: str, limit: int = TITLE_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters (plain text, for the cards element)."""
    line = " ".join(str(text).split())
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line


def escape_text(text: str, limit: int = TITLE_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters and escaped so Markdown shows it verbatim."""
    return _PUNCTUATION.sub(r"\\\1", one_line(text, limit))


def safe_url(url: str | None) -> str | None:
    """``url`` percent-encoded for a Markdown link, or None unless it is an absolute http(s) URL."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc:
        return None
    return quote(url.strip(), safe=_URL_SAFE)


def format_price(price: float | None, domain: str) -> str:
    if price is None:
        return ""
    symbol = CURRENCY.get(domain, "")
    return f"{symbol}{price:,.0f}" if domain == "co.jp" else f"{symbol}{price:,.2f}"


def format_rating(listing: Listing) -> str:
    if listing.rating is None:
        return ""
    return f"★ {listing.rating:.1f}"


def format_reviews(listing: Listing) -> str:
    return "" if listing.reviews is None else f"{listing.reviews:,}"


def is_search_link(listing: Listing) -> bool:
    """A marketplace search page (links backend, or a fallback), not a product with details."""
    return listing.asin is None and listing.price is None and listing.rating is None and listing.reviews is None


def link(text: str, url: str | None) -> str:
    """``[text](url)`` when the URL is safe, else the text alone (``text`` must already be escaped)."""
    target = safe_url(url)
    return f"[{text}]({target})" if target else text


def group_by_product(listings: Sequence[Listing]) -> list[tuple[str, list[Listing]]]:
    """Listings grouped by product type (folded like the dedup step folds), groups in first-seen order,
    so the ranking's interleaving still decides which type comes first."""
    groups: dict[str, tuple[str, list[Listing]]] = {}
    for listing in listings:
        key = normalize_product(listing.product)
        groups.setdefault(key, (listing.product, []))[1].append(listing)
    return list(groups.values())


def render_group(product: str, listings: Sequence[Listing], domain: str, votes: str = "") -> str:
    """One product type: a heading, then a card table of listings (or a list of search links)."""
    heading = f"#### {escape_text(product[:1].upper() + product[1:], 80)}" + (f" · {votes}" if votes else "")
    lines = [heading, ""]
    links = [listing for listing in listings if is_search_link(listing)]
    products = [listing for listing in listings if not is_search_link(listing)]
    if products:
        lines += ["| | Listing | Price | Rating | Reviews |", "|---|---|---|---|---|"]
        for listing in products:
            image = safe_url(listing.image)
            picture = f"![{escape_text(listing.title, 40)}]({image})" if image else ""
            badges = " · Prime" if listing.prime else ""
            lines.append(
                f"| {picture} | **{link(escape_text(listing.title), listing.url)}**{badges} "
                f"| {format_price(listing.price, domain)} | {format_rating(listing)} | {format_reviews(listing)} |"
            )
        lines.append("")
    for listing in links:
        lines.append(f"- {link(escape_text(listing.title), listing.url)}")
    return "\n".join(lines).rstrip()


def votes_label(suggestion: Suggestion | None, asked: int) -> str:
    if suggestion is None:
        return ""
    if suggestion.score is not None:  # fused: the model's share and the similar needs behind it
        similar = len(suggestion.neighbours)
        needs = f" · {similar} similar need{'s' if similar != 1 else ''}" if similar else ""
        return f"score {suggestion.score:.2f} · {suggestion.votes} of {asked} phrasings{needs}"
    if asked <= 1:
        return ""
    return f"{suggestion.votes} of {asked} phrasings"


def render_cards(listings: Sequence[Listing], suggestions: Sequence[Suggestion], domain: str, asked: int) -> str:
    """Every product type's card group, in ranking order."""
    by_key = {normalize_product(s.product): s for s in suggestions}
    return "\n\n".join(
        render_group(product, group, domain, votes_label(by_key.get(normalize_product(product)), asked))
        for product, group in group_by_product(listings)
    )


def phrasing_labels(need: str, paraphrases: Sequence[str]) -> dict[str, str]:
    """How each phrasing is named to the user: "your words", "rewrite 1", ..."""
    phrasings = [need, *paraphrases]
    return {text: ("your words" if index == 0 else f"rewrite {index}") for index, text in enumerate(phrasings)}


def product_reasons(suggestion: Suggestion, labels: dict[str, str], quote: Callable[[str], str]) -> str:
    """Why a product type was suggested, in words: the phrasings behind it and its first similar need
    (``quote`` formats that need: Markdown for the message, plain text for the cards element)."""
    sources = ", ".join(dict.fromkeys(labels.get(source, "a rewrite") for source in suggestion.sources))
    reasons = [f"suggested for {sources}"] if sources else []
    if suggestion.neighbours:
        reasons.append(f"listed for similar needs like {quote(suggestion.neighbours[0])}")
    return "; ".join(reasons) or ("suggested for your words" if suggestion.score is None else "close to your words")


def render_why(need: str, paraphrases: Sequence[str], suggestions: Sequence[Suggestion]) -> str:
    """A short explanation: which phrasings were asked and which of them led to each product type."""
    if not suggestions:
        return ""
    label = phrasing_labels(need, paraphrases)
    lines = ["**Why these?**"]
    if paraphrases:
        asked = "; ".join(f"*{escape_text(text, 100)}*" for text in paraphrases)
        rewrites = "a rewrite" if len(paraphrases) == 1 else f"{len(paraphrases)} rewrites"
        lines.append(f"I also asked the model with {rewrites} of your need: {asked}.")
    for suggestion in suggestions:
        why = product_reasons(suggestion, label, quote=lambda text: f"*{escape_text(text, 80)}*")
        lines.append(f"- {escape_text(suggestion.product, 80)}: {why}")
    if any(s.score is not None for s in suggestions):
        lines.append("\nProduct types backed by the model and by similar needs rank higher.")
    elif paraphrases:
        lines.append("\nProduct types suggested for more phrasings rank higher.")
    return "\n".join(lines)


def render_notes(warnings: Sequence[str]) -> str:
    return "\n".join(f"> ⚠️ {escape_text(warning, 300)}" for warning in dict.fromkeys(warnings))


FOLLOW_UP_HINT = "_Try a follow-up: **cheaper**, **under $20**, **more** and a product type, or a new need._"


def render_answer(
    *,
    need: str,
    paraphrases: Sequence[str],
    suggestions: Sequence[Suggestion],
    listings: Sequence[Listing],
    domain: str,
    warnings: Sequence[str] = (),
    title: str | None = None,
) -> str:
    """The whole answer message: a title (Markdown, already escaped), the cards, notes, the why, and what
    to try next."""
    asked = 1 + len(paraphrases)
    parts = [title or f"**Here is what could help with “{escape_text(need, 120)}”:**"]
    if listings:
        parts.append(render_cards(listings, suggestions, domain, asked))
    else:
        parts.append("I found no listings for this. Try rephrasing the need, or raise the budget.")
    if warnings:
        parts.append(render_notes(warnings))
    why = render_why(need, paraphrases, suggestions)
    if why:
        parts.append(why)
    parts.append(FOLLOW_UP_HINT)
    return "\n\n".join(part for part in parts if part)
