"""Pick the search backend named by the settings (``links``, ``axesso`` or ``catalog``): the one place that
turns the whole :class:`~agent.core.config.Settings` into the narrow options each backend is built from,
so search code never sees model or UI settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.core.config import Settings
from agent.core.http import HttpPolicy
from tools.base import SearchBackend
from tools.catalog import CatalogBackend, CatalogError, CatalogOptions
from tools.links import LinksBackend

if TYPE_CHECKING:
    from tools.axesso import AxessoOptions


class CatalogNotConfiguredError(CatalogError):
    """The catalog backend was chosen without a catalog path."""


def make_backend(settings: Settings) -> SearchBackend:
    """The backend for ``settings.backend``.

    ``axesso`` without a key still works (search links plus a warning). ``catalog`` loads and validates
    the feed now, so a bad path or file fails early with a :class:`~tools.catalog.CatalogError`
    (a ``ValueError``) whose message says how to fix it.
    """
    if settings.backend == "links":
        return LinksBackend()  # needs nothing: each query carries its marketplace
    if settings.backend == "axesso":
        from tools.axesso import AxessoBackend  # requests and friends load only when needed

        return AxessoBackend(axesso_options(settings))
    if settings.backend == "catalog":
        return CatalogBackend.from_options(catalog_options(settings))
    raise ValueError(f"Unknown backend {settings.backend!r}; choose links, axesso or catalog.")


def axesso_options(settings: Settings) -> AxessoOptions:
    """Key, URL, HTTP policy, search cache, concurrency and call-budget floor; nothing else."""
    from tools.axesso import CACHE_FILE, AxessoOptions

    return AxessoOptions(
        api_key=settings.rapidapi_key,
        base_url=settings.axesso_url,
        http=HttpPolicy.from_settings(settings),
        cache_file=settings.home_dir / CACHE_FILE,
        cache_ttl_seconds=settings.cache_ttl_hours * 3600,
        read_cache=not settings.no_cache,
        concurrency=settings.search_concurrency,
        ratelimit_floor=settings.ratelimit_floor,
    )


def catalog_options(settings: Settings) -> CatalogOptions:
    """The feed's path; raises :class:`CatalogNotConfiguredError` when there is none."""
    if settings.catalog is None:
        raise CatalogNotConfiguredError(
            "The catalog backend needs a product feed: pass --catalog PATH (or set WHAZZAT_CATALOG) "
            "to a JSONL or CSV file with columns title, url, price, rating, reviews, image, category."
        )
    return CatalogOptions(path=settings.catalog)
