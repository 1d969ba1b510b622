"""Shared fixtures. Every test gets its own WHAZZAT_HOME and no RapidAPI key from the environment;
the network is off (pytest-socket, see pyproject) except loopback for local test servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeWhazzatLLM

# Tests run the model alone unless they opt into a memory (tests/test_memory.py and test_fusion.py build
# theirs with fake embeddings; the integration tests use the real one): the default memory embeds the
# whole shipped dataset with MiniLM, per WHAZZAT_HOME. Set for the whole session, module fixtures included.
os.environ["WHAZZAT_MEMORY_MODE"] = "model"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("whazzat-home")
    monkeypatch.setenv("WHAZZAT_HOME", str(home))
    for name in ("RAPIDAPI_KEY", "WHAZZAT_RAPIDAPI_KEY", "WHAZZAT_AXESSO_URL", "WHAZZAT_MODEL",
                 "WHAZZAT_ADAPTER", "WHAZZAT_BACKEND", "WHAZZAT_PARAPHRASES", "WHAZZAT_LLM_ENDPOINT",
                 "WHAZZAT_MEMORY_URL"):
        monkeypatch.delenv(name, raising=False)

    return home


@pytest.fixture
def fake_llm() -> FakeWhazzatLLM:
    return FakeWhazzatLLM()


def exact_similarity(texts: list[str]) -> list[list[float]]:
    """A similarity with no model: 1.0 for equal strings, 0.0 otherwise (unit tests that skip MiniLM)."""
    return [[1.0 if a == b else 0.0 for b in texts] for a in texts]


@pytest.fixture(scope="session")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A WHAZZAT_HOME shared by the integration tests, so the GGUF converts once per run."""
    yield tmp_path_factory.mktemp("embedded-home")
