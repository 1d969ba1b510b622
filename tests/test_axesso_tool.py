"""The Axesso search as a LangChain tool: langchain-tests' standard suites plus its argument schema."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from pydantic import ValidationError

from agent.bench.fake_axesso import SEARCH_PATH, product, search_page
from agent.core.config import Settings
from tests.conftest_axesso import (  # noqa: F401 - fixtures are found by name
    FAKE_KEY,
    fixture_axesso_server,
    fixture_server,
    make_settings,
)
from tools.axesso_tool import AxessoSearchInput, AxessoSearchTool
from tools.base import SearchOutcome
from tools.registry import axesso_options

#: A home of its own for the standard suites (their fixtures cannot take tmp_path).
_HOME_DIR = tempfile.TemporaryDirectory(prefix="whazzat-tool-")  # removed when the session ends
_HOME = Path(_HOME_DIR.name)
EXAMPLE_ARGS = {"keyword": "garden trowel", "domain": "com", "page": 1, "sort": "relevanceblender"}


class _StandardParams:
    """Without a key the tool answers from the links fallback: the suites run with no server at all."""

    @property
    def tool_constructor(self) -> type[AxessoSearchTool]:
        return AxessoSearchTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"options": axesso_options(Settings(home=_HOME, backend="axesso", rapidapi_key=None))}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return dict(EXAMPLE_ARGS)


class TestAxessoToolUnit(_StandardParams, ToolsUnitTests):
    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return {"RAPIDAPI_KEY": FAKE_KEY, "WHAZZAT_HOME": str(_HOME)}, {}, {"api_key": FAKE_KEY}


@pytest.mark.anyio
class TestAxessoToolIntegration(_StandardParams, ToolsIntegrationTests):
    pass


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the schema -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        {"keyword": ""},
        {"keyword": "   "},
        {"keyword": "x" * 81},
        {"keyword": "trowel\n<script>"},
        {"keyword": "trowel\x00"},
        {"keyword": "trowel", "domain": "evil.example"},
        {"keyword": "trowel", "page": 0},
        {"keyword": "trowel", "page": 6},
        {"keyword": "trowel", "sort": "cheapest"},
        {"keyword": "trowel", "unknown": 1},
    ],
)
def test_invalid_arguments_are_refused(args):
    with pytest.raises(ValidationError):
        AxessoSearchInput(**args)


def test_keyword_is_trimmed_and_defaults_apply():
    args = AxessoSearchInput(keyword="  garden   trowel ")
    assert (args.keyword, args.domain, args.page, args.sort) == (
        "garden trowel",
        "com",
        1,
        "relevanceblender",
    )
    assert AxessoSearchInput(keyword="x" * 80, domain="co.uk", page=5, sort="review-rank").page == 5


# --- calling it --------------------------------------------------------------------------------------
def test_tool_call_returns_json_content_and_the_outcome_as_artifact(server, tmp_path):
    server.expect_request(
        SEARCH_PATH,
        query_string={
            "domainCode": "de",
            "keyword": "Gartenkelle",
            "page": "1",
            "sortBy": "relevanceblender",
        },
    ).respond_with_json(search_page([product(dpUrl="/Kelle/dp/B00002N6U4")]))
    tool = AxessoSearchTool(options=axesso_options(make_settings(tmp_path, server.url_for("").rstrip("/"))))
    message = tool.invoke(
        {
            "name": tool.name,
            "args": {"keyword": "Gartenkelle", "domain": "de"},
            "id": "1",
            "type": "tool_call",
        }
    )
    content = json.loads(message.content)
    assert content["listings"][0]["url"] == "https://www.amazon.de/Kelle/dp/B00002N6U4"
    assert content["listings"][0]["rating"] == 4.7 and content["warnings"] == []
    assert isinstance(message.artifact, SearchOutcome) and message.artifact.calls == 1
    assert FAKE_KEY not in message.model_dump_json() and FAKE_KEY not in repr(tool)


def test_tool_without_a_key_answers_with_a_link_and_a_warning(tmp_path):
    tool = AxessoSearchTool(options=axesso_options(Settings(home=tmp_path, rapidapi_key=None)))
    content = json.loads(tool.invoke({"keyword": "garden trowel"}))
    assert content["listings"] == [
        {
            "title": "Search Amazon for “garden trowel”",
            "url": "https://www.amazon.com/s?k=garden+trowel",
            "price": None,
            "rating": None,
            "reviews": None,
            "prime": False,
            "sponsored": False,
        }
    ]
    assert "RAPIDAPI_KEY is not set" in content["warnings"][0]
