"""Pick the search backend named by the settings: ``links``, ``axesso`` or ``catalog``."""

from __future__ import annotations

from agent.config import Settings
from tools.base import SearchBackend
from tools.catalog import CatalogError
from tools.links import LinksBackend


class CatalogNotConfiguredError(CatalogError):
    """The catalog backend was chosen without a catalog path."""


def make_backend(settings: Settings) -> SearchBackend:
    """The backend for ``settings.backend``.

    ``axesso`` without a key still works (search links plus a warning). ``catalog`` loads and validates
    the feed now, so a bad path or file fails early with a :class:`~tools.catalog.CatalogError`
    (a ``ValueError``) whose message says how to fix it.
    """
    if settings.backend == "links":
        return LinksBackend()
    if settings.backend == "axesso":
        from tools.axesso import AxessoBackend  # requests and friends load only when needed

        return AxessoBackend(settings)
    if settings.backend == "catalog":
        if settings.catalog is None:
            raise CatalogNotConfiguredError(
                "The catalog backend needs a product feed: pass --catalog PATH (or set WHAZZAT_CATALOG) "
                "to a JSONL or CSV file with columns title, url, price, rating, reviews, image, category."
            )
        from tools.catalog import CatalogBackend

        return CatalogBackend.from_path(settings.catalog)
    raise ValueError(f"Unknown backend {settings.backend!r}; choose links, axesso or catalog.")
