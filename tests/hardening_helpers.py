"""Shared pieces of the hardening tests (tests/test_hardening_*.py, tests/test_fuzz.py).

They run the real commands and the real chain, with only the model (tests/fakes.py) and MiniLM replaced,
so what they prove holds for what users run. Nothing here touches the network or the embedded model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from typer.testing import CliRunner, Result

import agent.core.embeddings
import agent.pipeline.chain
import agent.pipeline.ranking
from agent.core.config import AMAZON_DOMAINS
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM
from tools.axesso_parse import AMAZON_IMAGE_HOSTS

runner = CliRunner()
MARKETPLACE_HOSTS = frozenset(f"www.amazon.{domain}" for domain in AMAZON_DOMAINS)
#: What may never appear in a search keyword (or a product type): links, markup, template syntax.
FORBIDDEN_IN_KEYWORDS = ("://", "www.", "<", ">", "[", "]", "{", "}", "|", "\\", "javascript:")


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    """Unit vectors from a hash: equal texts are similar, others mostly not (MiniLM takes seconds)."""
    rows = []
    for text in texts:
        seed = int(hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(), 16) % 2**32
        vector = np.random.default_rng(seed).normal(size=32)
        rows.append(vector / np.linalg.norm(vector))
    return np.array(rows).reshape(len(rows), 32)


def use_fake_model(monkeypatch: pytest.MonkeyPatch, llm: FakeWhazzatLLM | None = None) -> FakeWhazzatLLM:
    """Make every command build its chain on ``llm`` (a fresh FakeWhazzatLLM by default), with exact
    duplicate folding and hash embeddings instead of MiniLM. Returns the model, which records prompts."""
    llm = llm if llm is not None else FakeWhazzatLLM(prompts=[])
    real_build = agent.pipeline.chain.build_chain

    def build(settings: Any = None, **overrides: Any) -> Any:
        overrides.pop("llm", None)
        return real_build(settings, llm=llm, similarity=exact_similarity, **overrides)

    monkeypatch.setattr(agent.pipeline.chain, "build_chain", build)
    monkeypatch.setattr(agent.pipeline.ranking, "minilm_relevance", lambda titles, products: [0.5] * len(titles))
    monkeypatch.setattr(agent.core.embeddings, "embed", fake_embed)
    return llm


def axesso_env(monkeypatch: pytest.MonkeyPatch, url: str, key: str = "test-key-not-real") -> None:
    """Point the axesso backend at ``url`` with test-speed timeouts and retries (3 tries each)."""
    for name, value in {
        "RAPIDAPI_KEY": key,
        "WHAZZAT_AXESSO_URL": url.rstrip("/"),
        "WHAZZAT_HTTP_CONNECT_TIMEOUT": "1",
        "WHAZZAT_HTTP_READ_TIMEOUT": "0.5",
        "WHAZZAT_HTTP_MAX_ATTEMPTS": "3",
        "WHAZZAT_HTTP_BACKOFF_INITIAL": "0.01",
        "WHAZZAT_HTTP_BACKOFF_MAX": "0.02",
        "WHAZZAT_HTTP_RETRY_AFTER_CAP": "1",
        "WHAZZAT_RATELIMIT_FLOOR": "0",
    }.items():
        monkeypatch.setenv(name, value)


def invoke(args: Sequence[object], **kwargs: Any) -> Result:
    """Run the real ``whazzat`` command line in-process."""
    from agent.cli.main import app

    return runner.invoke(app, [str(arg) for arg in args], **kwargs)


def assert_clean_failure(result: Result, *fragments: str, after_progress: bool = False) -> None:
    """Exit code 2, one line on stderr containing ``fragments``, no traceback, nothing on stdout.
    With ``after_progress``, progress lines of work done before the failure may come first."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    if after_progress:
        lines = lines[-1:]
        assert result.stderr.count("Error: ") == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` parsed; fails on any line that is not a whole JSON object."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "the file ends in a half-written line"
    # Split on "\n" only, as JSONL readers do: str.splitlines() would also split inside a record at
    # characters JSON leaves unescaped (U+0085, U+2028).
    records = [json.loads(line) for line in data.decode("utf-8").split("\n")[:-1]]
    assert all(isinstance(record, dict) for record in records)
    return records


def assert_safe_keyword(keyword: str) -> None:
    """A search keyword made from model output: short, printable, one line, no links or markup."""
    assert keyword and keyword == keyword.strip() and keyword.isprintable(), repr(keyword)
    assert len(keyword) <= 60 and len(keyword.split()) <= 6, repr(keyword)
    lowered = keyword.casefold()
    assert not any(bad in lowered for bad in FORBIDDEN_IN_KEYWORDS), repr(keyword)


def assert_safe_listing_urls(listing: dict[str, Any] | Any) -> None:
    """An https link on an Amazon marketplace host, and an image (if any) on Amazon's image hosts."""
    url = listing["url"] if isinstance(listing, dict) else listing.url
    image = listing.get("image") if isinstance(listing, dict) else listing.image
    parts = urlsplit(url)
    assert (
        parts.scheme == "https" and parts.hostname in MARKETPLACE_HOSTS and parts.netloc == parts.hostname
    ), url
    if image is not None:
        image_parts = urlsplit(image)
        assert image_parts.scheme == "https" and image_parts.hostname in AMAZON_IMAGE_HOSTS, image
