"""The Axesso search as a LangChain tool, for an agent to call: validated arguments, compact JSON content,
and the full :class:`~tools.base.SearchOutcome` as its artifact."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.tools import BaseTool
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, StringConstraints

from agent.core.config import Domain, get_settings
from tools.axesso import AxessoBackend, AxessoOptions
from tools.base import SearchBackend, SearchOutcome, SearchQuery, SortBy


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


def _options_from_environment() -> AxessoOptions:
    """The options the ``WHAZZAT_*`` and ``RAPIDAPI_KEY`` environment variables give."""
    from tools.registry import axesso_options

    return axesso_options(get_settings())


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

    options: AxessoOptions = Field(
        default_factory=_options_from_environment, description="Key, URL, cache and HTTP policy."
    )
    backend: SearchBackend | None = Field(default=None, description="Backend to use; built from options if None.")
    _backend: SearchBackend | None = PrivateAttr(default=None)

    @property
    def api_key(self) -> SecretStr | None:
        return self.options.api_key

    def _get_backend(self) -> SearchBackend:
        if self.backend is not None:
            return self.backend
        if self._backend is None:
            self._backend = AxessoBackend(self.options)
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
