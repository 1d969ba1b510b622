"""The ``axesso`` backend (real Amazon listings) and the LangChain tool around it.

For each product type: the on-disk cache first (24 h by default, so a repeated need costs no call), else
one Axesso search, all product types at once in a small thread pool. Whatever goes wrong remotely (no
key, network down, retries used up, call budget spent, no results) that product type falls back to the
``links`` backend and the outcome says why in a warning: the chain never fails because the API did.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.tools import BaseTool
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, StringConstraints

from agent.config import Domain, Settings, get_settings
from agent.schemas import Listing
from tools.axesso_client import AxessoClient, AxessoError, AxessoNotFound
from tools.axesso_parse import AxessoApiError, AxessoFormatError, parse_search
from tools.base import SearchBackend, SearchOutcome, SearchQuery, SortBy
from tools.cache import DiskCache
from tools.http import HttpPolicy
from tools.links import LinksBackend

logger = logging.getLogger(__name__)

CACHE_FILE = "search-cache.sqlite3"
_CACHE_VERSION = "v1"  # bump when the cached payload's meaning changes
_BUDGET_KEY = f"axesso:{_CACHE_VERSION}:ratelimit"
_NO_LISTINGS = "found no listings"
_NO_KEY = (
    "is not used (RAPIDAPI_KEY is not set: get a key for the Axesso Amazon Data Service on rapidapi.com)"
)


def cache_key(query: SearchQuery) -> str:
    """Domain, page, sort and the keyword folded to lower case with single spaces."""
    keyword = " ".join(query.keyword.casefold().split())
    return f"axesso:{_CACHE_VERSION}:{query.domain}:{query.page}:{query.sort}:{keyword}"


@dataclass
class _Found:
    """What one product type produced, before warnings are merged across product types."""

    listings: list[Listing] = field(default_factory=list)
    calls: int = 0
    cache_hit: bool = False
    problem: str | None = None  # set when we fell back to a search link
    everywhere: bool = False  # the problem is the account's, not this product type's


class AxessoBackend(SearchBackend):
    """Amazon listings from Axesso, cached on disk, falling back to search links."""

    name = "axesso"

    def __init__(
        self,
        settings: Settings,
        *,
        client: AxessoClient | None = None,
        cache: DiskCache | None = None,
        fallback: SearchBackend | None = None,
    ) -> None:
        self._key: SecretStr | None = settings.rapidapi_key if _has_key(settings.rapidapi_key) else None
        self._use_cache_reads = not settings.no_cache
        self._concurrency = settings.search_concurrency
        self._cache = cache or DiskCache(settings.home_dir / CACHE_FILE, settings.cache_ttl_hours * 3600)
        self._fallback = fallback or LinksBackend()
        self._client = client
        if self._client is None and self._key is not None:
            self._client = AxessoClient(
                api_key=self._key,
                base_url=settings.axesso_url,
                policy=HttpPolicy.from_settings(settings),
                ratelimit_floor=settings.ratelimit_floor,
                pool_size=settings.search_concurrency,
            )
        if self._client is not None and self._use_cache_reads:
            remembered = self._cache.get(_BUDGET_KEY)
            if isinstance(remembered, int):
                self._client.restore_remaining(remembered)

    def __repr__(self) -> str:
        return f"AxessoBackend(key={'set' if self._key else 'missing'}, client={self._client!r})"

    # --- SearchBackend -------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchOutcome:
        return self.search_many([query])

    def search_many(self, queries: Sequence[SearchQuery]) -> SearchOutcome:
        """All queries at once (bounded pool), in order; duplicates are searched once."""
        unique = list(dict.fromkeys(queries))
        if not unique:
            return SearchOutcome()
        if len(unique) == 1:
            found = [self._find(unique[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(self._concurrency, len(unique))) as pool:
                found = list(pool.map(self._find, unique))
        self._remember_budget()
        return self._merge(unique, found)

    # --- one product type ----------------------------------------------------------------------------
    def _find(self, query: SearchQuery) -> _Found:
        """Never raises: any failure becomes a search link and a reason."""
        try:
            return self._find_or_raise(query)
        except Exception as error:  # noqa: BLE001 - a bug here must not take the whole answer down
            logger.warning(
                "Axesso search for %r failed unexpectedly: %s", query.keyword, type(error).__name__
            )
            return self._fall_back(query, f"failed unexpectedly ({type(error).__name__})")

    def _find_or_raise(self, query: SearchQuery) -> _Found:
        if self._client is None:
            return self._fall_back(query, _NO_KEY, everywhere=True)
        key = cache_key(query)
        cached = self._cache.get(key) if self._use_cache_reads else None
        if cached is not None:
            try:
                return self._found(query, self._listings(query, cached), calls=0, cache_hit=True)
            except (AxessoApiError, AxessoFormatError):
                pass  # an entry we can no longer read: search again
        try:
            payload, calls = self._client.fetch(query)
        except AxessoNotFound as error:
            return self._fall_back(query, _NO_LISTINGS, calls=error.calls)
        except AxessoError as error:
            return self._fall_back(query, error.reason, calls=error.calls, everywhere=error.everywhere)
        try:
            listings = self._listings(query, payload)
        except AxessoApiError as error:
            return self._fall_back(
                query, f"answered with an error ({_scrub(str(error), self._key)})", calls=calls
            )
        except AxessoFormatError as error:
            return self._fall_back(query, f"answered with an unexpected body ({error})", calls=calls)
        self._cache.set(key, payload)  # a valid answer, even an empty one, is worth keeping
        return self._found(query, listings, calls=calls)

    def _listings(self, query: SearchQuery, payload: Any) -> list[Listing]:
        """Validated listings; raises AxessoApiError / AxessoFormatError for a body that is not results."""
        parsed = parse_search(payload, keyword=query.keyword, domain=query.domain)
        if parsed.dropped:
            logger.info(
                "Axesso: dropped %d of %d items for %r (no valid title or Amazon URL).",
                parsed.dropped,
                parsed.total,
                query.keyword,
            )
        return parsed.listings

    def _found(
        self, query: SearchQuery, listings: list[Listing], *, calls: int, cache_hit: bool = False
    ) -> _Found:
        if not listings:
            found = self._fall_back(query, _NO_LISTINGS, calls=calls)
            found.cache_hit = cache_hit
            return found
        return _Found(listings=listings, calls=calls, cache_hit=cache_hit)

    def _fall_back(
        self, query: SearchQuery, problem: str, *, calls: int = 0, everywhere: bool = False
    ) -> _Found:
        listings = self._fallback.search(query).listings
        return _Found(listings=listings, calls=calls, problem=problem, everywhere=everywhere)

    # --- bookkeeping ---------------------------------------------------------------------------------
    def _remember_budget(self) -> None:
        """Keep RapidAPI's remaining-calls count for later runs, until its reset (or the cache TTL)."""
        budget = self._client.reported_budget if self._client is not None else None
        if budget is not None:
            remaining, reset_seconds = budget
            self._cache.set(_BUDGET_KEY, remaining, ttl_seconds=reset_seconds)

    def _merge(self, queries: list[SearchQuery], found: list[_Found]) -> SearchOutcome:
        """One outcome; one warning per distinct problem, naming the product types it hit.

        An account-wide problem (no key, key refused, budget spent) names no product type, so the same
        warning from separate searches reads the same and can be shown once.
        """
        outcome = SearchOutcome()
        problems: dict[tuple[str, bool], list[str]] = {}
        for query, item in zip(queries, found, strict=True):
            outcome.listings.extend(item.listings)
            outcome.calls += item.calls
            outcome.cache_hits += int(item.cache_hit)
            if item.problem is not None:
                problems.setdefault((item.problem, item.everywhere), []).append(query.keyword)
        for (problem, everywhere), keywords in problems.items():
            where = "" if everywhere else " for " + ", ".join(f"'{keyword}'" for keyword in keywords)
            warning = f"Axesso {problem}{where}; showing Amazon search links instead."
            outcome.warnings.append(_scrub(warning, self._key))
        return outcome


def _has_key(key: SecretStr | None) -> bool:
    return key is not None and bool(key.get_secret_value().strip())


def _scrub(text: str, key: SecretStr | None) -> str:
    """Belt and braces: no message we build may carry the key, whatever a server echoes back."""
    if key is None or not key.get_secret_value():
        return text
    return text.replace(key.get_secret_value(), "***")


# --- the LangChain tool ------------------------------------------------------------------------------
def _printable(text: str) -> str:
    if not text.isprintable():
        raise ValueError("keyword must be printable text (no control characters or line breaks)")
    return re.sub(r"\s+", " ", text)


Keyword = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80), AfterValidator(_printable)
]


class AxessoSearchInput(BaseModel):
    """Arguments of :class:`AxessoSearchTool`."""

    model_config = ConfigDict(extra="forbid")

    keyword: Keyword = Field(description="A generic product type to search for, e.g. 'garden trowel'.")
    domain: Domain = Field(default="com", description="Amazon marketplace, e.g. 'com', 'co.uk', 'de'.")
    page: int = Field(default=1, ge=1, le=5, description="Result page, 1 to 5.")
    sort: SortBy = Field(default="relevanceblender", description="Axesso's sort order.")


class AxessoSearchTool(BaseTool):
    """Search Amazon listings for a product type (Axesso via RapidAPI, cached, falls back to links).

    Returns a compact JSON text for a model to read, and the full :class:`SearchOutcome` as the artifact.
    """

    name: str = "amazon_product_search"
    description: str = (
        "Search Amazon for buyable listings of a generic product type (e.g. 'garden trowel'). Returns "
        "titles, https Amazon URLs, prices, star ratings and review counts."
    )
    args_schema: type[BaseModel] = AxessoSearchInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    settings: Settings = Field(default_factory=get_settings, description="Key, URL, cache and HTTP settings.")
    backend: SearchBackend | None = Field(
        default=None, description="Backend to use; built from settings if None."
    )
    _backend: SearchBackend | None = PrivateAttr(default=None)

    @property
    def api_key(self) -> SecretStr | None:
        return self.settings.rapidapi_key

    def _get_backend(self) -> SearchBackend:
        if self.backend is not None:
            return self.backend
        if self._backend is None:
            self._backend = AxessoBackend(self.settings)
        return self._backend

    def _run(
        self,
        keyword: str,
        domain: Domain = "com",
        page: int = 1,
        sort: SortBy = "relevanceblender",
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, SearchOutcome]:
        query = SearchQuery(keyword=keyword, domain=domain, page=page, sort=sort)
        outcome = self._get_backend().search_many([query])
        fields = {"title", "url", "price", "rating", "reviews", "prime", "sponsored"}
        content = {
            "listings": [listing.model_dump(include=fields) for listing in outcome.listings],
            "warnings": outcome.warnings,
        }
        return json.dumps(content, ensure_ascii=False), outcome
