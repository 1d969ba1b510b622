"""The need memory on a real Chroma server (several workers sharing one memory, docs/serving.md).

The test starts ``chroma run`` on loopback in a temporary folder and talks to it through langchain-chroma,
with fake bag-of-words embeddings instead of MiniLM. Skipped only when chromadb or langchain-chroma is
not installed (``pip install -e ".[chroma]"``)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

chromadb = pytest.importorskip("chromadb", reason="chromadb is not installed: pip install -e '.[chroma]'")
pytest.importorskip("langchain_chroma", reason="langchain-chroma is not installed: pip install -e '.[chroma]'")

import agent.pipeline.memory  # noqa: E402
from agent.pipeline.memory import MemoryRow, build_memory  # noqa: E402
from agent.pipeline.vector_stores import add_embedded, chroma_store, count_rows, search_by_vectors  # noqa: E402
from tests.fakes import WordEmbeddings  # noqa: E402

HOST = "127.0.0.1"
START_TIMEOUT_S = 60

ROWS = [
    {"need": "something to open a bottle of beer", "products": ["bottle opener", "beer koozie"]},
    {"need": "my dog pulls on the leash", "products": ["no pull harness", "dog leash"]},
    {"need": "cold hands when cycling in winter", "products": ["cycling gloves", "bar mitts"]},
]


def _chroma_executable() -> str:
    beside_python = Path(sys.executable).with_name("chroma")
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which("chroma")
    if found is None:
        pytest.fail("chromadb is installed but its `chroma` command is neither next to Python nor on PATH")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server on loopback, for the whole module; stopped (killed if need be) afterwards."""
    from chromadb.config import Settings as ChromaSettings

    folder = tmp_path_factory.mktemp("chroma")
    port = _free_port()
    log_path = folder / "server.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [_chroma_executable(), "run", "--path", str(folder / "db"), "--host", HOST, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=env,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"chroma run exited with {server.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
            try:  # the client connects as it is made: make one per try
                chromadb.HttpClient(host=HOST, port=port, settings=ChromaSettings(anonymized_telemetry=False)).heartbeat()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    pytest.fail(f"chroma run did not answer within {START_TIMEOUT_S} s:\n"
                                f"{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.2)
        yield f"http://{HOST}:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


@pytest.fixture
def collection() -> str:
    """A fresh collection per test, so tests on the one server do not see each other's rows."""
    return f"whazzat-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def small_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    (data / "val.jsonl").write_text("")
    (data / "test.jsonl").write_text("")
    monkeypatch.setattr(agent.pipeline.memory, "shipped_split_path", lambda split: data / f"{split}.jsonl")
    return data


def test_search_on_the_server_finds_the_nearest_rows_with_their_cosine(chroma_url, collection, small_dataset, isolated_home):
    memory = build_memory(isolated_home, embeddings=WordEmbeddings(), url=chroma_url, collection=collection)
    assert count_rows(memory.store) == len(ROWS)
    assert memory.stats().store == chroma_url and memory.stats().rows == len(ROWS)

    beer, dog = memory.search(["open a beer bottle", "dog leash pulling"], k=2)
    assert [hit.need for hit in beer][0] == "something to open a bottle of beer"
    assert beer[0].products == ["bottle opener", "beer koozie"] and beer[0].source == "dataset"
    assert beer[0].query == "open a beer bottle"
    assert dog[0].need == "my dog pulls on the leash" and dog[0].products == ["no pull harness", "dog leash"]
    for hits in (beer, dog):
        assert len(hits) == 2
        assert 0 < hits[0].similarity <= 1
        assert hits[0].similarity >= hits[1].similarity  # closest first

    # Cosine space: similarity = 1 - distance, so the exact text of a row scores 1.
    [[same, *_]] = memory.search(["cold hands when cycling in winter"], k=1)
    assert same.need == "cold hands when cycling in winter" and same.similarity == pytest.approx(1.0, abs=1e-3)

    # And a near row's similarity is its true cosine (not 1 - an L2 distance).
    embeddings = WordEmbeddings()
    query, row = "open a beer bottle", "something to open a bottle of beer"
    cosine = sum(a * b for a, b in zip(embeddings.embed_query(query), embeddings.embed_query(row), strict=True))
    assert 0 < cosine < 0.99
    assert beer[0].similarity == pytest.approx(cosine, abs=1e-3)

    # More neighbours asked than rows held: all of them, not an error.
    [everything] = memory.search(["beer"], k=10)
    assert len(everything) == len(ROWS)


def test_a_row_added_by_one_worker_is_found_by_another(chroma_url, collection, small_dataset, isolated_home, tmp_path):
    embeddings = WordEmbeddings()
    first = build_memory(isolated_home, embeddings=embeddings, url=chroma_url, collection=collection)
    added = first.add([MemoryRow(need="thing to uncork wine", products=["corkscrew", "wine opener"])])
    assert added == 1
    assert count_rows(first.store) == len(ROWS) + 1

    # A second worker: its own process-level memory and home, the same server and collection.
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    second = build_memory(other_home, embeddings=embeddings, url=chroma_url, collection=collection)
    assert count_rows(second.store) == len(ROWS) + 1  # not seeded a second time
    [[nearest, *_]] = second.search(["uncork a wine bottle"], k=1)
    assert nearest.need == "thing to uncork wine" and nearest.source == "user"
    assert nearest.products == ["corkscrew", "wine opener"] and 0 < nearest.similarity <= 1

    # And the other way round: the second worker's row is visible to the first at once.
    second.add([MemoryRow(need="a lamp for reading in bed", products=["clip-on reading light"], source="feedback")])
    [[lamp, *_]] = first.search(["reading lamp for bed"], k=1)
    assert lamp.need == "a lamp for reading in bed" and lamp.source == "feedback"
    assert count_rows(first.store) == len(ROWS) + 2


def test_building_again_does_not_duplicate_rows(chroma_url, collection, small_dataset, isolated_home):
    embeddings = WordEmbeddings()
    memory = build_memory(isolated_home, embeddings=embeddings, url=chroma_url, collection=collection)
    memory.add([MemoryRow(need="thing to uncork wine", products=["corkscrew"])])
    memory.add([MemoryRow(need="thing to uncork wine", products=["corkscrew"])])  # the same row again
    assert count_rows(memory.store) == len(ROWS) + 1

    # The same home again (its user rows file now holds the row twice): nothing new on the server.
    again = build_memory(isolated_home, embeddings=embeddings, url=chroma_url, collection=collection)
    assert count_rows(again.store) == len(ROWS) + 1
    found = again.search(["uncork wine"], k=len(ROWS) + 1)[0]
    assert [hit.need for hit in found].count("thing to uncork wine") == 1


def test_an_empty_collection_answers_with_no_rows(chroma_url, collection, small_dataset, isolated_home):
    (small_dataset / "train.jsonl").write_text("")
    memory = build_memory(isolated_home, embeddings=WordEmbeddings(), url=chroma_url, collection=collection)
    assert count_rows(memory.store) == 0
    assert memory.search(["open a beer bottle", "dog leash"], k=3) == [[], []]


def test_more_rows_than_one_server_request_takes_go_up_in_chunks(chroma_url, collection):
    """The shipped train split alone is over the server's batch limit (5461 rows for chromadb 1.5)."""
    import numpy as np

    store = chroma_store(chroma_url, collection, WordEmbeddings())
    limit = store._client.get_max_batch_size()
    rows = limit + 7
    vectors = np.random.default_rng(0).normal(size=(rows, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"row-{i}" for i in range(rows)]
    add_embedded(store, [f"need {i}" for i in range(rows)], vectors, [{"source": "dataset"}] * rows, ids)
    assert count_rows(store) == rows
    [[(document, similarity)]] = search_by_vectors(store, vectors[-1:], 1)
    assert document.page_content == f"need {rows - 1}" and similarity == pytest.approx(1.0, abs=1e-3)
    assert search_by_vectors(store, vectors[:2], 0) == [[], []]


def test_rows_only_in_the_rows_file_reach_a_server_other_workers_added_to(chroma_url, collection, small_dataset, isolated_home, tmp_path):
    from agent.pipeline.memory import remember

    embeddings = WordEmbeddings()
    build_memory(isolated_home, embeddings=embeddings, url=chroma_url, collection=collection)
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    other = build_memory(other_home, embeddings=embeddings, url=chroma_url, collection=collection)
    other.add([MemoryRow(need="a lamp for reading in bed", products=["clip-on reading light"])])

    # This worker's feedback export: the row goes to its rows file only, for the next memory built.
    remember(isolated_home, [MemoryRow(need="thing to uncork wine", products=["corkscrew"], source="feedback")])
    again = build_memory(isolated_home, embeddings=embeddings, url=chroma_url, collection=collection)
    [[nearest, *_]] = again.search(["uncork wine"], k=1)
    assert nearest.need == "thing to uncork wine"
    assert count_rows(again.store) == len(ROWS) + 2
