"""The CLI's search flags end to end with the fake model: --backend axesso against a local server that
speaks Axesso's schema, --no-cache, --budget, and --backend catalog with a local feed."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agent.bench.fake_axesso import SEARCH_PATH
from agent.cli.main import app
from tests.conftest_axesso import (  # noqa: F401 - fixtures are found by name
    FAKE_KEY,
    fixture_axesso_server,
    fixture_minilm,
    fixture_server,
)
from tests.test_axesso_e2e import axesso_env, marketplace  # noqa: F401 - fixture and handler
from tests.test_cli import fake_chain  # noqa: F401 - fixture

runner = CliRunner()
NEED = "something to dig food"


def ask_json(*flags: str) -> dict:
    result = runner.invoke(app, ["ask", NEED, "--json", *flags])
    assert result.exit_code == 0, result.output
    assert FAKE_KEY not in result.output
    return json.loads(result.stdout)


def test_axesso_backend_cache_and_no_cache(axesso_env, fake_chain, minilm) -> None:  # noqa: ANN001, F811
    axesso_env.expect_request(SEARCH_PATH).respond_with_handler(marketplace)
    first = ask_json("--backend", "axesso")
    calls = len(axesso_env.log)
    assert calls >= 3
    assert first["listings"] and all(l["url"].startswith("https://www.amazon.com/") for l in first["listings"])
    assert all(l["price"] is not None and l["score_parts"] for l in first["listings"])

    ask_json("--backend", "axesso")
    assert len(axesso_env.log) == calls  # the second identical run made no HTTP call

    ask_json("--backend", "axesso", "--no-cache")
    assert len(axesso_env.log) == 2 * calls


def test_axesso_budget_flag(axesso_env, fake_chain, minilm) -> None:  # noqa: ANN001, F811
    axesso_env.expect_request(SEARCH_PATH).respond_with_handler(marketplace)
    data = ask_json("--backend", "axesso", "--budget", "10")
    assert data["listings"] and all(l["price"] <= 10 for l in data["listings"])


def test_axesso_without_a_key_falls_back_to_links(fake_chain, monkeypatch) -> None:  # noqa: ANN001, F811
    monkeypatch.delenv("RAPIDAPI_KEY", raising=False)
    data = ask_json("--backend", "axesso")
    assert data["listings"] and all(l["url"].startswith("https://www.amazon.com/s?k=") for l in data["listings"])
    assert data["warnings"]


def test_catalog_backend(fake_chain, tmp_path, minilm) -> None:  # noqa: ANN001, F811
    feed = tmp_path / "shop.jsonl"
    rows = [
        {"title": "Stainless garden trowel", "url": "https://shop.example/trowel", "price": 12.5,
         "rating": 4.6, "reviews": 120},
        {"title": "Leather garden gloves", "url": "https://shop.example/gloves", "price": 9.0},
        {"title": "Espresso machine", "url": "https://shop.example/espresso", "price": 199.0},
    ]
    feed.write_text("\n".join(json.dumps(row) for row in rows))
    data = ask_json("--backend", "catalog", "--catalog", str(feed))
    titles = [listing["title"] for listing in data["listings"]]
    assert "Stainless garden trowel" in titles and "Espresso machine" not in titles


def test_catalog_errors_are_one_line(fake_chain, tmp_path) -> None:  # noqa: ANN001, F811
    missing = runner.invoke(app, ["ask", NEED, "--backend", "catalog", "--catalog", str(tmp_path / "no.jsonl")])
    assert missing.exit_code == 2 and len(missing.stderr.strip().splitlines()) == 1
    no_path = runner.invoke(app, ["ask", NEED, "--backend", "catalog"])
    assert no_path.exit_code == 2 and "--catalog" in no_path.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("name,link\nshovel,https://shop.example/s\n")
    columns = runner.invoke(app, ["ask", NEED, "--backend", "catalog", "--catalog", str(bad)])
    assert columns.exit_code == 2 and "Traceback" not in columns.output
