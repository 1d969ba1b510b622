"""A test-only Chainlit target: the real app (``agent/ui/app.py``, its handlers, steps and cards) with a fake
model, a four-row need memory and no MiniLM, searching the ``axesso`` backend on a local fake Axesso server
(:mod:`agent.bench.fake_axesso`). Answers take about a second and are the same every time.

tests/test_ui_browser.py starts it with ``WHAZZAT_AXESSO_URL`` pointing at a fake server it controls. By
hand (a fake server is started in-process when none is given)::

    CHAINLIT_APP_ROOT=. python -m chainlit run tests/ui_fake_app.py --headless --port 8001

Each need gets its own product types (:data:`PRODUCTS`), so tests can tell chats apart.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

# Settings come from the environment: set what this app needs unless the caller chose otherwise.
for _name, _value in {
    "WHAZZAT_BACKEND": "axesso",
    "RAPIDAPI_KEY": "fake-key-for-the-fake-server",
    "WHAZZAT_PARAPHRASES": "3",
    "WHAZZAT_SEMANTIC_DEDUP": "false",
    "WHAZZAT_MEMORY_MODE": "fused",
    "WHAZZAT_NEIGHBOURS_K": "1",
    "WHAZZAT_FUSION_RELEVANCE_WEIGHT": "0",
    "WHAZZAT_HTTP_MAX_ATTEMPTS": "1",
    "WHAZZAT_TOP_K": "9",
}.items():
    os.environ.setdefault(_name, _value)

# Imported once the environment above is set.
import numpy as np

import agent.core.embeddings
from agent.core.config import get_settings
from agent.pipeline.memory import MemoryRow, NeedMemory
from agent.pipeline.vector_stores import MatrixVectorStore
from agent.ui import services
from tests.fakes import DEFAULT_PRODUCTS, DEFAULT_REWRITES, FakeWhazzatLLM, WordEmbeddings

#: Need -> the model's product types. The three needs share no product type.
PRODUCTS = {
    **DEFAULT_PRODUCTS,
    "open a bottle of wine": "corkscrew, wine glasses, bottle stopper",
    "my back hurts after sitting all day": "lumbar support cushion, standing desk, foam roller",
    "a gift for a coffee lover": "coffee grinder, pour over kettle, coffee scale",
}
#: Need -> the model's rewrites (one per line), so no answer warns that rewriting failed.
REWRITES = {
    **DEFAULT_REWRITES,
    "open a bottle of wine": "uncork a bottle of wine\nopen a wine bottle\npour wine for guests",
    "my back hurts after sitting all day": "back pain from long sitting\nsore back at the desk\nsitting hurts my back",
    "a gift for a coffee lover": "present for someone who loves coffee\ncoffee gift idea\ngift for coffee fans",
}
# Each rewrite gets its need's product types (the fake model's fallback would be shared by every chat).
PRODUCTS.update({line: PRODUCTS[need] for need, lines in REWRITES.items() for line in lines.split("\n")
                 if line not in PRODUCTS})
#: The need memory: one known need close to each need above.
MEMORY = [
    MemoryRow(need="dig food in the garden", products=["garden trowel", "harvest basket"]),
    MemoryRow(need="tool to open a wine bottle", products=["corkscrew", "wine opener"]),
    MemoryRow(need="back hurts from an office chair", products=["lumbar support cushion", "ergonomic chair"]),
    MemoryRow(need="present for a coffee fan", products=["coffee grinder", "milk frother"]),
]


def exact_similarity(texts: list[str]) -> list[list[float]]:
    return [[1.0 if a == b else 0.0 for b in texts] for a in texts]


def word_vectors(texts: Sequence[str]) -> np.ndarray:
    """MiniLM's stand-in: unit-length bag-of-words vectors of MiniLM's size (instant, no model)."""
    vectors = WordEmbeddings(agent.core.embeddings.DIMENSIONS).embed_documents(list(texts))
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), agent.core.embeddings.DIMENSIONS)


def word_relevance(titles: Sequence[str], products: Sequence[str]) -> list[float]:
    """The follow-ups' relevance: the word-vector cosine of each title and its product type."""
    return [float(t @ p) for t, p in zip(word_vectors(titles), word_vectors(products), strict=True)]


def fake_services() -> services.Services:
    embeddings = WordEmbeddings()
    memory = NeedMemory(MatrixVectorStore(embeddings), embeddings, user_file=None, label="fake")
    memory.add(MEMORY)
    llm = FakeWhazzatLLM(products=PRODUCTS, rewrites=REWRITES, prompts=[], rewrite_calls={})
    return services.Services(get_settings(), llm=llm, similarity=exact_similarity, relevance=word_relevance,
                             memory=memory)


if "WHAZZAT_AXESSO_URL" not in os.environ:  # started by hand: serve the fake Axesso from here
    from agent.bench.fake_axesso import FakeAxesso

    _axesso = FakeAxesso(delay_s=0.2).__enter__()
    os.environ["WHAZZAT_AXESSO_URL"] = _axesso.url

# Every MiniLM use (the fusion's relevance, the rank stage's) goes through embeddings.embed: no model here.
agent.core.embeddings.embed = word_vectors
services._default = fake_services()

from agent.ui import app  # noqa: F401 - registers the real app's Chainlit callbacks
