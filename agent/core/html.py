"""Show a :class:`~agent.core.schemas.Recommendation` in Jupyter as HTML cards (its ``_repr_html_``).

Everything shown comes from a model or a marketplace API, so it is untrusted: every text is escaped with
:func:`html.escape`, and only ``https`` links and images are used (a ``javascript:`` or plain ``http`` URL
is shown as text, or dropped for an image). Styles are inline, as notebook front ends may strip
``<style>`` blocks, and colours inherit so dark themes stay readable.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from agent.core.schemas import Listing, Recommendation

_BOX = "font-family: system-ui, sans-serif; font-size: 14px; line-height: 1.4; margin: 4px 0;"
_MUTED = "opacity: 0.7; font-size: 12px;"
_CHIP = "display: inline-block; border: 1px solid #8884; border-radius: 12px; padding: 1px 8px; margin: 2px;"
_GRID = "display: flex; flex-wrap: wrap; gap: 10px; margin-top: 8px;"
_CARD = "border: 1px solid #8885; border-radius: 8px; padding: 8px; width: 210px; box-sizing: border-box;"
_IMAGE = "display: block; width: 100%; height: 120px; object-fit: contain; margin-bottom: 6px;"


def safe_https(url: str | None) -> str | None:
    """``url`` if it is a well-formed https URL (fit for an attribute once escaped), else None."""
    if not url or any(ch.isspace() or not ch.isprintable() for ch in url):
        return None
    parts = urlsplit(url)
    return url if parts.scheme == "https" and parts.hostname else None


def recommendation_html(result: Recommendation) -> str:
    """The need, its paraphrases, product types with votes, then one card per listing."""
    asked = 1 + len(result.paraphrases)
    parts = [f'<div class="whazzat-recommendation" style="{_BOX}">']
    parts.append(f"<div><strong>Need:</strong> {escape(result.need)}</div>")
    if result.paraphrases:
        also = " · ".join(escape(paraphrase) for paraphrase in result.paraphrases)
        parts.append(f'<div style="{_MUTED}">Also asked as: {also}</div>')
    if result.suggestions:
        chips = "".join(
            f'<span style="{_CHIP}">{escape(s.product)} <small>{s.votes}/{asked}</small></span>'
            for s in result.suggestions
        )
        parts.append(f"<div>{chips}</div>")
    if result.listings:
        cards = "".join(_card(listing) for listing in result.listings)
        parts.append(f'<div style="{_GRID}">{cards}</div>')
    for warning in result.warnings:
        parts.append(f'<div style="{_MUTED}">Note: {escape(warning)}</div>')
    parts.append("</div>")
    return "".join(parts)


def _card(listing: Listing) -> str:
    image = safe_https(listing.image)
    url = safe_https(listing.url)
    title = escape(listing.title)
    html = [f'<div style="{_CARD}">']
    if image:
        html.append(
            f'<img src="{escape(image)}" alt="" loading="lazy" referrerpolicy="no-referrer" style="{_IMAGE}">'
        )
    html.append(f'<div style="{_MUTED}">{escape(listing.product)}</div>')
    if url:
        html.append(f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer nofollow">{title}</a>')
    else:
        html.append(f"<span>{title}</span>")
    details = _details(listing)
    if details:
        html.append(f'<div style="{_MUTED}">{" · ".join(details)}</div>')
    html.append("</div>")
    return "".join(html)


def _details(listing: Listing) -> list[str]:
    details = []
    if listing.price is not None:
        details.append(f"{listing.price:,.2f}")
    if listing.rating is not None:
        reviews = f" ({listing.reviews:,})" if listing.reviews is not None else ""
        details.append(f"★ {listing.rating:.1f}{reviews}")
    if listing.prime:
        details.append("Prime")
    if listing.sponsored:
        details.append("Sponsored")
    return details
