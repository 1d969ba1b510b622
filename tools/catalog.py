"""The ``catalog`` backend: search a local product feed (a shop's own catalog) instead of Amazon.

The feed is JSONL (one object per line) or CSV with a header. Columns: ``title`` and ``url`` are required;
``price``, ``rating``, ``reviews``, ``image`` and ``category`` are optional and read as tolerantly as
Axesso's fields. Rows that fail validation are skipped and counted in a warning; a missing file, an
unknown format or missing required columns raise a :class:`CatalogError` that says how to fix it.

Relevance of a row to a product type blends MiniLM's cosine similarity (meaning: "trowel" ~ "hand
shovel") with rapidfuzz's token-set ratio (spelling: exact words in the title), see :data:`SEMANTIC_WEIGHT`.
"""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.core.errors import WhazzatError
from agent.core.schemas import Listing
from tools.axesso_parse import clean_title
from tools.base import SearchBackend, SearchOutcome, SearchQuery
from tools.values import parse_count, parse_price, parse_rating

REQUIRED_COLUMNS: tuple[str, ...] = ("title", "url")
OPTIONAL_COLUMNS: tuple[str, ...] = ("price", "rating", "reviews", "image", "category")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}

#: relevance = SEMANTIC_WEIGHT * MiniLM cosine + (1 - SEMANTIC_WEIGHT) * token-set ratio / 100
SEMANTIC_WEIGHT = 0.7
#: Rows below this relevance are not a match for the product type at all.
MIN_RELEVANCE = 0.4
#: Listings returned per product type.
MAX_RESULTS = 10


class CatalogError(WhazzatError, ValueError):
    """The catalog cannot be used; the message says how to fix it."""


class CatalogNotFoundError(CatalogError):
    """No file at the catalog path."""


class CatalogFormatError(CatalogError):
    """Not a JSONL/CSV file we can read, or no valid row in it."""


class CatalogColumnsError(CatalogError):
    """Required columns are missing."""


class CatalogRow(BaseModel):
    """One product of the feed, validated."""

    model_config = ConfigDict(extra="ignore")

    title: str
    url: str
    price: float | None = None
    rating: float | None = Field(default=None, ge=0, le=5)
    reviews: int | None = Field(default=None, ge=0)
    image: str | None = None
    category: str | None = None

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, value: object) -> str:
        title = clean_title(value)
        if title is None:
            raise ValueError("title is empty")
        return title

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, value: object) -> str:
        if not _is_https_url(value):
            raise ValueError("url must be an absolute https:// URL")
        return str(value).strip()

    @field_validator("image", mode="before")
    @classmethod
    def _image(cls, value: object) -> str | None:
        return str(value).strip() if _is_https_url(value) else None  # a bad image only loses the picture

    @field_validator("price", mode="before")
    @classmethod
    def _price(cls, value: object) -> float | None:
        return parse_price(value)

    @field_validator("rating", mode="before")
    @classmethod
    def _rating(cls, value: object) -> float | None:
        return parse_rating(value)

    @field_validator("reviews", mode="before")
    @classmethod
    def _reviews(cls, value: object) -> int | None:
        return parse_count(value)

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, value: object) -> str | None:
        return clean_title(value)

    def to_listing(self, product: str) -> Listing:
        return Listing(
            product=product,
            title=self.title,
            url=self.url,
            price=self.price,
            rating=self.rating,
            reviews=self.reviews,
            image=self.image,
        )


def _is_https_url(value: object) -> bool:
    if not isinstance(value, str) or any(ch.isspace() for ch in value.strip()):
        return False
    parts = urlsplit(value.strip())
    return parts.scheme == "https" and bool(parts.hostname)


# --- loading -----------------------------------------------------------------------------------------
class Catalog(BaseModel):
    """The valid rows of a feed and what was skipped."""

    path: Path
    rows: list[CatalogRow]
    skipped: int = 0
    first_problem: str | None = None


def load_catalog(path: Path | str) -> Catalog:
    """Read and validate a JSONL or CSV feed. Raises :class:`CatalogError` subclasses."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CatalogNotFoundError(
            f"Catalog file not found: {path}. Pass --catalog with the path of a JSONL or CSV product feed."
        )
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise CatalogFormatError(
            f"Catalog {path.name}: unknown format {path.suffix!r}; use a .jsonl or .csv file "
            f"with columns {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}."
        )
    try:
        records, columns = (_read_jsonl if kind == "jsonl" else _read_csv)(path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CatalogFormatError(f"Catalog {path.name} cannot be read: {error}") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise CatalogColumnsError(
            f"Catalog {path.name} lacks the column(s) {', '.join(missing)}. Required: "
            f"{', '.join(REQUIRED_COLUMNS)}; optional: {', '.join(OPTIONAL_COLUMNS)}."
        )
    catalog = Catalog(path=path, rows=[])
    for line, record in records:
        try:
            catalog.rows.append(CatalogRow.model_validate(record))
        except ValidationError as error:
            catalog.skipped += 1
            if catalog.first_problem is None:
                catalog.first_problem = f"line {line}: {error.errors()[0]['msg']}"
    if not catalog.rows:
        raise CatalogFormatError(f"Catalog {path.name} has no valid product row ({catalog.first_problem}).")
    return catalog


def _read_jsonl(path: Path) -> tuple[list[tuple[int, Any]], set[str]]:
    records, columns = [], set()
    with path.open(encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None  # counted as a skipped row
            if isinstance(record, dict):
                record = {str(key).strip().lower(): value for key, value in record.items()}
                columns.update(record)
            records.append((line_number, record))
    return records, columns


def _read_csv(path: Path) -> tuple[list[tuple[int, Any]], set[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        records = [
            (
                line_number,
                {str(name).strip().lower(): value for name, value in row.items() if name is not None},
            )
            for line_number, row in enumerate(reader, start=2)
        ]
        columns = {str(name).strip().lower() for name in reader.fieldnames or []}
    return records, columns


# --- searching ---------------------------------------------------------------------------------------
class CatalogOptions(BaseModel):
    """What the catalog backend needs: its feed (:func:`tools.registry.catalog_options` builds it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="The product feed, JSONL or CSV.")


class CatalogBackend(SearchBackend):
    """Ranks the feed's rows against each product type by meaning and spelling."""

    name = "catalog"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._row_vectors = None  # MiniLM embeddings of the rows, computed on the first search
        self._lock = threading.Lock()  # searches may run in threads; embed the rows once

    @classmethod
    def from_options(cls, options: CatalogOptions) -> CatalogBackend:
        """Loads and validates the feed now: raises a :class:`CatalogError` that says how to fix it."""
        return cls(load_catalog(options.path))

    def search(self, query: SearchQuery) -> SearchOutcome:
        return self.search_many([query])

    def search_many(self, queries: Sequence[SearchQuery]) -> SearchOutcome:
        from rapidfuzz import fuzz, process, utils

        from agent.core.embeddings import embed

        unique = list(dict.fromkeys(query.keyword for query in queries))
        outcome = SearchOutcome(warnings=self._load_warnings())
        if not unique:
            return outcome
        with self._lock:
            if self._row_vectors is None:
                self._row_vectors = embed([_row_text(row) for row in self.catalog.rows])
        semantic = embed(unique) @ self._row_vectors.T
        titles = [row.title for row in self.catalog.rows]
        spelling = process.cdist(unique, titles, scorer=fuzz.token_set_ratio, processor=utils.default_process)
        relevance = SEMANTIC_WEIGHT * semantic + (1 - SEMANTIC_WEIGHT) * spelling / 100
        for index, keyword in enumerate(unique):
            best = relevance[index].argsort()[::-1][:MAX_RESULTS]
            matches = [
                self.catalog.rows[i].to_listing(keyword) for i in best if relevance[index, i] >= MIN_RELEVANCE
            ]
            if not matches:
                outcome.warnings.append(f"Catalog {self.catalog.path.name} has nothing matching '{keyword}'.")
            outcome.listings.extend(matches)
        return outcome

    def _load_warnings(self) -> list[str]:
        if not self.catalog.skipped:
            return []
        warning = (
            f"Catalog {self.catalog.path.name}: skipped {self.catalog.skipped} invalid row(s) "
            f"(first: {self.catalog.first_problem})."
        )
        return [warning]


def _row_text(row: CatalogRow) -> str:
    """What a row means: its title, plus its category when the title alone may not say it."""
    return f"{row.title} ({row.category})" if row.category else row.title
