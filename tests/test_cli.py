"""The command line: exit codes and messages for bad input, --json output, --help."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import agent.pipeline.chain
from agent.cli.main import app
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM

runner = CliRunner()


@pytest.fixture
def fake_chain(monkeypatch: pytest.MonkeyPatch) -> FakeWhazzatLLM:
    """Make the CLI build its chain on the fake model (the real one is tested in test_integration)."""
    llm = FakeWhazzatLLM()
    real_build = agent.pipeline.chain.build_chain

    def build(settings=None, **overrides):  # noqa: ANN001, ANN202
        return real_build(settings, llm=llm, similarity=exact_similarity, **overrides)

    monkeypatch.setattr(agent.pipeline.chain, "build_chain", build)
    return llm


def test_help_teaches() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "ask" in result.output and "suggest" in result.output and "something to dig food" in result.output
    ask_help = runner.invoke(app, ["ask", "--help"])
    assert "--paraphrases" in ask_help.output and "--backend" in ask_help.output and "Examples" in ask_help.output


def test_ask_json_prints_exactly_the_recommendation(fake_chain: FakeWhazzatLLM) -> None:
    result = runner.invoke(app, ["ask", "something to dig food", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"need", "paraphrases", "neighbours", "suggestions", "listings", "warnings",
                         "search_outages", "timings"}
    assert data["need"] == "something to dig food"
    assert data["suggestions"][0]["product"] == "garden trowel"
    assert all(listing["url"].startswith("https://www.amazon.com/s?k=") for listing in data["listings"])


def test_ask_table(fake_chain: FakeWhazzatLLM) -> None:
    result = runner.invoke(app, ["ask", "something to dig food", "--paraphrases", "2", "--domain", "de"])
    assert result.exit_code == 0, result.output
    assert "garden trowel" in result.stdout and "amazon.de" in result.stdout
    assert "a tool for digging in the garden" in result.stdout


def test_suggest_has_no_listings(fake_chain: FakeWhazzatLLM) -> None:
    result = runner.invoke(app, ["suggest", "something to dig food", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["listings"] == [] and data["suggestions"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", ""], "empty"),
        (["ask", "   "], "empty"),
        (["ask", "x" * 501], "under 500"),
        (["ask", "dig\x07food"], "control characters"),
        (["ask", "shovel", "--domain", "moon"], "--domain must be one of"),
        (["ask", "shovel", "--backend", "ebay"], "--backend must be one of"),
        (["ask", "shovel", "--budget", "-5"], "--budget"),
        (["ask", "shovel", "--paraphrases", "9"], "--paraphrases"),
        (["ask", "shovel", "--paraphrases", "-1"], "--paraphrases"),
        (["suggest", " "], "empty"),
    ],
)
def test_bad_input_exits_2_with_one_line(fake_chain: FakeWhazzatLLM, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output and result.stdout == ""
    assert fake_chain.prompts == []  # nothing reached the model


def test_missing_adapter_is_a_clear_error(tmp_path) -> None:  # noqa: ANN001
    result = runner.invoke(app, ["suggest", "shovel", "--adapter", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no LoRA adapter" in result.stderr and "Traceback" not in result.output
