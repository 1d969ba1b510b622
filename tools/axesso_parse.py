"""Turn an Axesso search response into validated :class:`~agent.core.schemas.Listing` objects.

Axesso's fields come and go between API versions, so reading is tolerant: two page shapes (the older
``responseStatus``/``foundProducts`` one and the 2025 ``statusCode`` one), unknown fields ignored, numbers
accepted as numbers or text. What we *use* is validated strictly, because it ends up as a link in front of
a user:

- the URL must be ``https://www.amazon.<domain>/...`` (a relative ``dpUrl`` is joined to the query's
  domain; without a ``dpUrl`` a valid ASIN gives ``/dp/<asin>``). Anything else, ``javascript:`` or another
  host, drops the item;
- the image must be an https URL on one of Amazon's image hosts, else it is left out;
- rating is a float in [0, 5], the review count a non-negative int, the price a positive float or None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from agent.core.config import AMAZON_DOMAINS
from agent.core.errors import WhazzatError
from agent.core.schemas import Listing
from tools.values import parse_bool, parse_count, parse_price, parse_rating

#: Hosts Amazon serves product images from; any other image URL is dropped.
AMAZON_IMAGE_HOSTS: frozenset[str] = frozenset(
    {
        "m.media-amazon.com",
        "images-na.ssl-images-amazon.com",
        "images-eu.ssl-images-amazon.com",
        "images-fe.ssl-images-amazon.com",
        "images.amazon.com",
        "ecx.images-amazon.com",
        "g-ecx.images-amazon.com",
    }
)
_MARKETPLACE_HOSTS = frozenset(f"www.amazon.{domain}" for domain in AMAZON_DOMAINS)
_ASIN = re.compile(r"^[A-Z0-9]{10}$")
_SPACES = re.compile(r"\s+")
#: Fields that mark a dict as a product (the 2025 example merges one product into the page object).
_PRODUCT_MARKERS = ("asin", "productDescription", "dpUrl")


class AxessoApiError(WhazzatError, ValueError):
    """The body is Axesso's error object (``{"logref": "error", "message": ...}``)."""


class AxessoFormatError(WhazzatError, ValueError):
    """The body is not a search response at all (not an object, products not a list, ...)."""


class AxessoProduct(BaseModel):
    """One entry of ``searchProductDetails``, read tolerantly: every field optional, extras ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    title: Any = Field(default=None, alias="productDescription")
    asin: Any = None
    reviews: Any = Field(default=None, alias="countReview")
    image: Any = Field(default=None, alias="imgUrl")
    price: Any = None
    rating: Any = Field(default=None, alias="productRating")
    prime: Any = None
    url: Any = Field(default=None, alias="dpUrl")
    sponsored: Any = None


class ParsedSearch(BaseModel):
    """The listings of one response and how many products were dropped by validation."""

    listings: list[Listing] = Field(default_factory=list)
    dropped: int = 0
    total: int = 0


#: Longest title kept; Amazon titles run to ~200 characters, anything longer is keyword stuffing.
MAX_TITLE_CHARS = 300


def clean_title(value: object) -> str | None:
    """Whitespace-collapsed, non-empty, printable text of at most MAX_TITLE_CHARS, or None."""
    if not isinstance(value, str):
        return None
    title = _SPACES.sub(" ", value).strip()
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return title if title and title.isprintable() else None


def amazon_url(value: object, domain: str, asin: str | None = None) -> str | None:
    """An absolute ``https://www.amazon.<domain>/`` URL for a product, or None when it is anything else."""
    if value is None or value == "":
        return f"https://www.amazon.{domain}/dp/{asin}" if asin else None
    if not isinstance(value, str) or not value.isprintable() or any(ch.isspace() for ch in value):
        return None
    url = urljoin(f"https://www.amazon.{domain}/", value) if value.startswith("/") else value
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # "https://host:abc/"
        return None
    if parts.scheme != "https" or parts.hostname not in _MARKETPLACE_HOSTS:
        return None
    if parts.username or parts.password or port is not None or parts.netloc != parts.hostname:
        return None  # "https://www.amazon.com@evil.example/" and the like
    return url


def amazon_image(value: object) -> str | None:
    """An https image URL on one of Amazon's image hosts, or None."""
    if not isinstance(value, str) or any(ch.isspace() for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or parts.hostname not in AMAZON_IMAGE_HOSTS or parts.netloc != parts.hostname:
        return None
    return value


def to_listing(product: AxessoProduct, *, keyword: str, domain: str) -> Listing | None:
    """A validated listing, or None when the product has no usable title or URL."""
    title = clean_title(product.title)
    asin = (
        product.asin.strip() if isinstance(product.asin, str) and _ASIN.match(product.asin.strip()) else None
    )
    url = amazon_url(product.url, domain, asin)
    if title is None or url is None:
        return None
    return Listing(
        product=keyword,
        title=title,
        url=url,
        price=parse_price(product.price),
        rating=parse_rating(product.rating),
        reviews=parse_count(product.reviews),
        image=amazon_image(product.image),
        asin=asin,
        sponsored=parse_bool(product.sponsored),
        prime=parse_bool(product.prime),
    )


def product_dicts(payload: object) -> list[dict[str, Any]]:
    """The raw product objects of a response of either shape.

    Raises :class:`AxessoApiError` for Axesso's error object and :class:`AxessoFormatError` for anything
    that is not a search response.
    """
    if not isinstance(payload, dict):
        raise AxessoFormatError(f"expected a JSON object, got {type(payload).__name__}")
    if payload.get("logref") == "error" or ("message" in payload and "searchProductDetails" not in payload):
        raise AxessoApiError(str(payload.get("message") or "unknown error")[:200])
    details = payload.get("searchProductDetails")
    if details is None:
        # The 2025 docs example is one product merged into the page object: read it as a page of one.
        return [payload] if any(payload.get(marker) for marker in _PRODUCT_MARKERS) else []
    if not isinstance(details, list):
        raise AxessoFormatError("searchProductDetails is not a list")
    return [item for item in details if isinstance(item, dict)]


def parse_search(payload: object, *, keyword: str, domain: str) -> ParsedSearch:
    """Listings for ``keyword`` from a decoded Axesso response (older or 2025 shape)."""
    raw = product_dicts(payload)
    listings = _valid_listings(raw, keyword=keyword, domain=domain)
    return ParsedSearch(listings=listings, dropped=len(raw) - len(listings), total=len(raw))


def _valid_listings(raw: Iterable[dict[str, Any]], *, keyword: str, domain: str) -> list[Listing]:
    listings = []
    for item in raw:
        listing = to_listing(AxessoProduct.model_validate(item), keyword=keyword, domain=domain)
        if listing is not None:
            listings.append(listing)
    return listings
