"""Search backends: turn product types into listings (``links``, ``axesso``, ``catalog``)."""

from tools.base import SearchBackend, SearchOutcome, SearchQuery
from tools.links import LinksBackend, amazon_search_url

__all__ = ["LinksBackend", "SearchBackend", "SearchOutcome", "SearchQuery", "amazon_search_url"]
