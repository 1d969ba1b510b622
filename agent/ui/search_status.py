"""Tell the user when the search backend is down, and still answer with the product types.

Backends never raise for a remote failure (``tools.base.SearchBackend``): Axesso falls back to search
links, says why in a warning, and lists the warnings that mean it did not answer at all (network down,
timeouts, 5xx or 429 after every retry, a body that is not JSON) in ``SearchOutcome.outages``, as
against an ordinary warning (no results for one product type, no key configured). A backend that raises
anyway, or hangs, ends in :class:`~agent.ui.stage_steps.SearchFailed`, answered here with search links
for the product types.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.core.config import Settings
from agent.core.schemas import Listing, Suggestion
from agent.ui.cards import escape_text

#: What the warning says first; the browser test looks for exactly this text.
SEARCH_UNAVAILABLE = "Search unavailable"


def search_trouble(outages: Sequence[str]) -> str | None:
    """The first warning saying the search backend did not answer, or None."""
    return next(iter(outages), None)


def unavailable_note(detail: str, settings: Settings, *, links: bool = True) -> str:
    """The visible warning: what happened (``detail``: escaped here) and what the user can do. ``links``:
    the answer that follows has a search link per product type."""
    instead = (" The product types above are still good, and the links below open Amazon's own search for "
               "each." if links else " The search links in the answer above still work.")
    switch = (" or choose *links* under “Where to search” in the settings" if settings.backend != "links"
              else "")
    return f"⚠️ **{SEARCH_UNAVAILABLE}**: {escape_text(detail, 300)}{instead} Try again in a minute{switch}."


def failed_reason(kind: str) -> str:
    """Why a search that raised gave nothing: the error's kind only (its text may hold URLs or keys)."""
    return f"failed ({kind})"


def timeout_reason(seconds: float) -> str:
    return f"did not answer within {seconds:g} s"


def failed_detail(reason: str, settings: Settings) -> str:
    """``detail`` for a search that raised or timed out (``reason``: one of the two above)."""
    return f"the {settings.backend} search {reason}."


def search_links(suggestions: Sequence[Suggestion], settings: Settings) -> list[Listing]:
    """An Amazon search link per product type (local, cannot fail), as many as the chat shows."""
    from tools.base import SearchQuery
    from tools.links import LinksBackend

    queries = [SearchQuery(keyword=s.product[:80], domain=settings.domain) for s in suggestions if s.product]
    return LinksBackend().search_many(queries).listings[: settings.top_k]


def product_types_line(suggestions: Sequence[Suggestion]) -> str:
    """The early answer, shown as soon as the merge ends: "Product types: a, b, c"."""
    return "Product types: " + ", ".join(escape_text(s.product, 60) for s in suggestions)
