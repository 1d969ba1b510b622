from urllib.parse import parse_qs, urlparse

import pytest

from agent.core.config import AMAZON_DOMAINS
from tools.base import SearchQuery
from tools.links import LinksBackend, amazon_search_url


@pytest.mark.parametrize("domain", AMAZON_DOMAINS)
def test_every_domain_gets_an_https_amazon_search_url(domain: str) -> None:
    url = urlparse(amazon_search_url("garden trowel", domain))
    assert url.scheme == "https" and url.netloc == f"www.amazon.{domain}" and url.path == "/s"


def test_keywords_are_url_encoded() -> None:
    url = amazon_search_url("painter's tape & drop cloth #2", "com")
    assert " " not in url and "&drop" not in url and "#" not in url
    assert parse_qs(urlparse(url).query) == {"k": ["painter's tape & drop cloth #2"]}


def test_backend_returns_one_listing_per_query() -> None:
    outcome = LinksBackend().search_many([SearchQuery(keyword="shovel"), SearchQuery(keyword="rake", domain="de")])
    assert [l.product for l in outcome.listings] == ["shovel", "rake"]
    assert outcome.listings[1].url.startswith("https://www.amazon.de/")
    assert outcome.calls == 0 and outcome.warnings == []
