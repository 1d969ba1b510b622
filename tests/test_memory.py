"""The need memory: rows in a vector store, added by command and used at once, rebuilt when stale or
corrupt, bad rows refused with a message. Fake bag-of-words embeddings stand in for MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import agent.core.embeddings
import agent.pipeline.memory
from agent.cli.main import app
from agent.core.concurrency import Memo
from agent.pipeline.memory import MemoryDataError, MemoryRow, build_memory, read_rows_file
from tests.fakes import WordEmbeddings

runner = CliRunner()


@pytest.fixture
def fake_embeddings(monkeypatch: pytest.MonkeyPatch) -> WordEmbeddings:
    """Every memory built in the test (the CLI's too) embeds with words, not MiniLM; no memory is reused."""
    embeddings = WordEmbeddings()
    monkeypatch.setattr(agent.core.embeddings, "get_langchain_embeddings", lambda: embeddings)
    monkeypatch.setattr(agent.pipeline.memory, "_memories", Memo())
    return embeddings


@pytest.fixture
def small_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Shipped splits replaced by a small one, so a test can change it."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"need": "something to open a bottle of beer", "products": ["bottle opener", "beer koozie"], "area": "x"},
        {"need": "my dog pulls on the leash", "products": ["no pull harness", "dog leash"], "source": "written"},
        {"need": "cold hands when cycling in winter", "products": ["cycling gloves", "bar mitts"]},
    ]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "val.jsonl").write_text("")
    (data / "test.jsonl").write_text("")
    monkeypatch.setattr(agent.pipeline.memory, "shipped_split_path", lambda split: data / f"{split}.jsonl")
    return data


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_search_finds_the_nearest_known_need_with_its_products(fake_embeddings, small_dataset, isolated_home):
    memory = build_memory(isolated_home, embeddings=fake_embeddings)
    [[first, *_]] = memory.search(["open a beer bottle"], k=2)
    assert first.need == "something to open a bottle of beer"
    assert first.products == ["bottle opener", "beer koozie"]
    assert first.source == "dataset" and 0 < first.similarity <= 1
    assert first.query == "open a beer bottle"


def test_a_batch_of_queries_is_answered_in_order(fake_embeddings, small_dataset, isolated_home):
    memory = build_memory(isolated_home, embeddings=fake_embeddings)
    found = memory.search(["winter cycling gloves for cold hands", "dog leash pulling"], k=1)
    assert [hits[0].need for hits in found] == ["cold hands when cycling in winter", "my dog pulls on the leash"]


def test_a_row_added_by_the_command_is_retrieved_by_the_next_call(fake_embeddings, small_dataset, tmp_path):
    rows = write_jsonl(tmp_path / "mine.jsonl", [{"need": "thing to uncork wine", "products": ["corkscrew", "wine opener"]}])
    added = runner.invoke(app, ["memory", "add", str(rows)])
    assert added.exit_code == 0, added.output
    assert "Added 1 rows" in added.output

    agent.pipeline.memory._memories.clear()  # the next command is a new process
    found = runner.invoke(app, ["memory", "search", "uncork a wine bottle", "--json"])
    assert found.exit_code == 0, found.output
    nearest = json.loads(found.output)[0]
    assert nearest["need"] == "thing to uncork wine" and nearest["source"] == "user"
    assert nearest["products"] == ["corkscrew", "wine opener"]


def test_rows_added_in_process_are_searchable_at_once(fake_embeddings, small_dataset, isolated_home):
    memory = build_memory(isolated_home, embeddings=fake_embeddings)
    memory.add([MemoryRow(need="fix a squeaky door hinge", products=["hinge lubricant", "door hinge"])])
    assert memory.search(["squeaky hinge on a door"], k=1)[0][0].need == "fix a squeaky door hinge"
    assert memory.stats().by_source == {"dataset": 3, "user": 1}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"need": "thing to uncork wine"}', "products"),
        ('{"need": "thing to uncork wine", "products": []}', "products"),
        ('{"need": "x", "products": ["corkscrew"]}', "need"),
        ("not json at all", "not valid JSON"),
        ('["a", "list"]', "not a JSON object"),
    ],
)
def test_bad_rows_are_rejected_with_their_line_and_nothing_is_added(fake_embeddings, small_dataset, tmp_path, line, reason):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"need": "good row about wine", "products": ["corkscrew"]}\n' + line + "\n")
    result = runner.invoke(app, ["memory", "add", str(path)])
    assert result.exit_code == 2
    assert f"{path}:2" in result.output and reason in result.output and "nothing was added" in result.output
    assert "Traceback" not in result.output
    stats = runner.invoke(app, ["memory", "stats", "--json"])
    assert json.loads(stats.output)["by_source"] == {"dataset": 3}


def test_a_missing_file_is_one_line(fake_embeddings, small_dataset, tmp_path):
    result = runner.invoke(app, ["memory", "add", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "file not found" in result.output


def test_csv_rows_split_their_products(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("need,products\nthing to uncork wine,corkscrew; wine opener\n")
    [row] = read_rows_file(path)
    assert row.products == ["corkscrew", "wine opener"] and row.source == "user"
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\na,b\n")
    with pytest.raises(MemoryDataError, match="'need' and 'products' columns"):
        read_rows_file(bad)


def test_a_corrupt_vector_cache_is_rebuilt(fake_embeddings, small_dataset, isolated_home):
    build_memory(isolated_home, embeddings=fake_embeddings)
    [cache] = (isolated_home / "memory" / "vectors").glob("train-*.npy")
    cache.write_bytes(b"this is not a numpy file")
    memory = build_memory(isolated_home, embeddings=fake_embeddings)
    assert memory.search(["dog pulls on leash"], k=1)[0][0].need == "my dog pulls on the leash"
    assert np.load(cache).shape == (3, fake_embeddings.size)  # written anew


def test_a_cache_of_the_wrong_shape_is_rebuilt(fake_embeddings, small_dataset, isolated_home):
    build_memory(isolated_home, embeddings=fake_embeddings)
    [cache] = (isolated_home / "memory" / "vectors").glob("train-*.npy")
    np.save(cache, np.zeros((1, fake_embeddings.size), dtype=np.float32))
    memory = build_memory(isolated_home, embeddings=fake_embeddings)
    assert memory.search(["cold hands cycling"], k=1)[0][0].need == "cold hands when cycling in winter"


def test_a_stale_memory_is_rebuilt_when_its_source_changes(fake_embeddings, small_dataset, isolated_home):
    build_memory(isolated_home, embeddings=fake_embeddings)
    with (small_dataset / "train.jsonl").open("a") as handle:
        handle.write(json.dumps({"need": "need to sharpen kitchen knives", "products": ["knife sharpener"]}) + "\n")
    memory = build_memory(isolated_home, embeddings=fake_embeddings)
    assert memory.search(["sharpen my knives"], k=1)[0][0].need == "need to sharpen kitchen knives"
    assert len(list((isolated_home / "memory" / "vectors").glob("train-*.npy"))) == 1  # the stale one is gone


def test_a_damaged_line_in_the_users_file_is_skipped_not_fatal(fake_embeddings, small_dataset, isolated_home):
    user_file = isolated_home / "memory" / "rows.jsonl"
    user_file.parent.mkdir(parents=True)
    user_file.write_text('{"need": "thing to uncork wine", "products": ["corkscrew"]}\n{"need": "half a li')
    memory = build_memory(isolated_home, embeddings=fake_embeddings)
    assert memory.stats().rows == 4


def test_an_eval_memory_leaves_out_the_users_rows_and_other_splits(fake_embeddings, small_dataset, isolated_home):
    write_jsonl(small_dataset / "test.jsonl", [{"need": "a test need about kayaks", "products": ["kayak paddle"]}])
    memory = build_memory(isolated_home, splits=("train", "val"), include_user=False, embeddings=fake_embeddings)
    assert all(n.need != "a test need about kayaks" for n in memory.search(["kayak paddle need"], k=5)[0])
    with pytest.raises(MemoryDataError, match="unknown dataset split"):
        build_memory(isolated_home, splits=("nope",), embeddings=fake_embeddings)
