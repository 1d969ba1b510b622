"""The endpoint backend against a local OpenAI-compatible test server: same prompts and parsers as the
local model, concurrent requests for batches, retries, clear errors, vLLM and TGI discovery."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path

import pytest
import typer
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from agent.cli.batch import batch
from agent.core.config import Settings
from agent.core.errors import WhazzatError
from agent.models.endpoint import (
    EndpointError,
    EndpointLLM,
    ServedModel,
    _shown,
    choose_model,
    load_endpoint_llm,
    normalize_endpoint,
)
from agent.pipeline.chain import build_chain
from agent.pipeline.prompts import render_prompt
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM
from tests.openai_server import FakeCompletionServer, fixture_openai_httpserver  # noqa: F401 - fixture
from tests.tiny_models import make_tiny_tokenizer
from tools.links import LinksBackend

NEEDS = [
    "something to dig food",
    "a quiet fan for my bedroom",
    "gift for a dad who loves fishing",
    "my back hurts",
    "first camping trip",
    "baking bread at home",
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tokenizer with a ChatML chat template (SmolLM2's layout), saved like a model's."""
    folder = tmp_path_factory.mktemp("tokenizer")
    make_tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture
def server(openai_httpserver: HTTPServer) -> FakeCompletionServer:
    return FakeCompletionServer(openai_httpserver)


def settings_for(url: str, tokenizer_dir: Path | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {"llm_endpoint": url, "http_backoff_initial": 0, "http_backoff_max": 0}
    if tokenizer_dir is not None:
        values["model"] = str(tokenizer_dir)
    return Settings(**values, **overrides)


def test_chain_over_the_endpoint_gives_what_the_local_model_would(
    server: FakeCompletionServer, tokenizer_dir: Path
) -> None:
    settings = settings_for(server.url, tokenizer_dir, paraphrases=4)
    llm = load_endpoint_llm(settings)
    assert llm.model_name == "whazzat"  # the LoRA adapter, not the bare base model
    result = build_chain(settings, llm=llm, backend=LinksBackend(), similarity=exact_similarity).invoke(
        NEEDS[0]
    )

    local = build_chain(settings, llm=FakeWhazzatLLM(), backend=LinksBackend(), similarity=exact_similarity)
    expected = local.invoke(NEEDS[0])
    assert result.paraphrases == expected.paraphrases and len(result.paraphrases) == 3
    assert result.products == expected.products and result.products[0] == "garden trowel"

    # The prompts were rendered here with the model's chat template, and sent greedy with the chain's limits.
    tokenizer = llm.tokenizer
    rewrite, *suggest = server.requests
    assert rewrite["prompt"] == render_prompt(tokenizer, "rewrite", need=NEEDS[0], n=4)
    assert rewrite["prompt"].endswith("<|im_start|>assistant\n")
    assert rewrite["max_tokens"] == settings.max_new_tokens_rewrite
    assert {request["prompt"] for request in suggest} == {
        render_prompt(tokenizer, "suggest", need=text) for text in [NEEDS[0], *result.paraphrases]
    }
    assert all(request["max_tokens"] == settings.max_new_tokens_suggest for request in suggest)
    assert all(request["model"] == "whazzat" and request["temperature"] == 0 for request in server.requests)


def test_a_batch_goes_out_as_concurrent_requests(server: FakeCompletionServer, tokenizer_dir: Path) -> None:
    settings = settings_for(server.url, tokenizer_dir, paraphrases=0, batch_size=4)
    chain = build_chain(
        settings, llm=load_endpoint_llm(settings), backend=LinksBackend(), similarity=exact_similarity
    )
    results = chain.batch(NEEDS)
    assert [result.need for result in results] == NEEDS
    assert len(server.requests) == len(NEEDS)
    assert 2 <= server.max_in_flight <= 4


def test_load_llm_picks_the_endpoint_when_configured(
    server: FakeCompletionServer, tokenizer_dir: Path
) -> None:
    from agent.models.llm import load_llm

    llm = load_llm(settings_for(server.url, tokenizer_dir))
    assert isinstance(llm, EndpointLLM)
    assert load_llm(settings_for(server.url, tokenizer_dir)) is llm  # built once per process


def test_busy_server_is_retried(server: FakeCompletionServer, tokenizer_dir: Path) -> None:
    server.failures = [503, 429]
    llm = load_endpoint_llm(settings_for(server.url, tokenizer_dir))
    assert llm.invoke("Need: something to dig food").startswith("garden trowel")
    assert len(server.requests) == 3


def test_async_and_streaming_calls_send_the_same_requests(
    server: FakeCompletionServer, tokenizer_dir: Path
) -> None:
    llm = load_endpoint_llm(settings_for(server.url, tokenizer_dir))
    assert asyncio.run(llm.ainvoke("Need: something to dig food")).startswith("garden trowel")
    assert "".join(llm.stream("Need: something to dig food")).startswith("garden trowel")
    assert [request["prompt"] for request in server.requests] == ["Need: something to dig food"] * 2
    assert all(request["temperature"] == 0 and "stream" not in request for request in server.requests)


def test_a_refused_request_is_an_error_that_names_the_cause(
    server: FakeCompletionServer, tokenizer_dir: Path
) -> None:
    settings = settings_for(server.url, tokenizer_dir, paraphrases=0)
    chain = build_chain(
        settings, llm=load_endpoint_llm(settings), backend=LinksBackend(), similarity=exact_similarity
    )
    server.failures = [400]
    results = chain.batch(NEEDS[:1], return_exceptions=True)
    assert isinstance(results[0], EndpointError)
    assert "HTTP 400" in str(results[0]) and "fake failure 400" in str(results[0])


def test_an_unreachable_server_says_so() -> None:
    url = "http://127.0.0.1:9"  # the discard port: nothing listens there
    with pytest.raises(EndpointError, match="cannot reach the model server at http://127.0.0.1"):
        load_endpoint_llm(settings_for(url))


def test_tgi_is_found_through_info(tokenizer_dir: Path, openai_httpserver: HTTPServer) -> None:
    tgi = FakeCompletionServer(openai_httpserver, tgi=True)
    llm = load_endpoint_llm(settings_for(tgi.url, tokenizer_dir))
    assert llm.model_name == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert llm.invoke("Need: something to dig food").startswith("garden trowel")


def test_not_a_model_server(openai_httpserver: HTTPServer) -> None:
    fake = FakeCompletionServer(openai_httpserver, models=[])  # answers neither /v1/models nor /info
    with pytest.raises(EndpointError, match="does not look like an OpenAI-compatible model server"):
        load_endpoint_llm(settings_for(fake.url + "/v1"))


def test_the_embedded_models_tokenizer_is_used_for_a_served_smollm2(
    server: FakeCompletionServer, isolated_home: Path
) -> None:
    # The converted tokenizer is cached under WHAZZAT_HOME (here: the tiny one stands in for SmolLM2's).
    make_tiny_tokenizer().save_pretrained(isolated_home / "models" / "smollm2-135m-instruct-tokenizer")
    llm = load_endpoint_llm(settings_for(server.url))  # default model: the embedded one
    assert llm.tokenizer is not None and llm.tokenizer.chat_template


def test_an_unknown_served_model_falls_back_to_plain_prompts(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, openai_httpserver: HTTPServer
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail the Hub lookup at once
    models = [{"id": "some-org/unknown-model", "object": "model"}]
    fake = FakeCompletionServer(openai_httpserver, models=models)
    with caplog.at_level(logging.WARNING):
        llm = load_endpoint_llm(settings_for(fake.url))
        assert llm.tokenizer is None
        assert "No tokenizer found" in caplog.text and "--model" in caplog.text
        result = build_chain(
            paraphrases=0, llm=llm, backend=LinksBackend(), similarity=exact_similarity
        ).invoke(NEEDS[0])
    assert result.products[0] == "garden trowel"
    assert fake.requests[0]["prompt"].endswith("assistant: ")


def test_choose_model() -> None:
    base = ServedModel(id="base")
    lora = ServedModel(id="other-lora", parent="base")
    whazzat = ServedModel(id="whazzat", parent="base")
    assert choose_model([base, lora, whazzat], "base") == base  # --model names a served model
    assert choose_model([base, lora, whazzat], "embedded:smollm2-135m-instruct") == whazzat
    assert choose_model([base, lora], "x") == lora
    assert choose_model([base], "x") == base


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://localhost:8000/v1/", "http://localhost:8000"),
        ("https://gpu.example.com/llm/v1/completions", "https://gpu.example.com/llm"),
        (" http://10.0.0.5:8080/ ", "http://10.0.0.5:8080"),
    ],
)
def test_normalize_endpoint(url: str, expected: str) -> None:
    assert normalize_endpoint(url) == expected


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://host/v1", "", "http://"])
def test_bad_endpoint_urls(url: str) -> None:
    with pytest.raises(EndpointError, match="must be an http"):
        normalize_endpoint(url)
    assert issubclass(EndpointError, WhazzatError)


def test_messages_never_show_credentials() -> None:
    assert _shown("https://user:secret@gpu.example.com:8443/llm") == "https://gpu.example.com:8443/llm"


def test_credentials_in_the_url_go_as_basic_auth_and_are_never_shown(
    server: FakeCompletionServer, tokenizer_dir: Path
) -> None:
    llm = load_endpoint_llm(settings_for(server.url.replace("http://", "http://user:s%40cret@"), tokenizer_dir))
    assert llm.invoke("Need: something to dig food").startswith("garden trowel")
    basic = "Basic " + base64.b64encode(b"user:s@cret").decode()
    sent = [request.headers.get("Authorization") for request, _ in server.httpserver.log]
    assert len(sent) == 2 and set(sent) == {basic}  # the model list (requests) and the completion (openai)
    server.failures = [400]
    with pytest.raises(EndpointError) as refused:
        llm.invoke("Need: something to dig food")
    for text in (str(refused.value), repr(llm), llm.endpoint):
        assert "s@cret" not in text and "s%40cret" not in text and "user:" not in text


def test_whazzat_batch_with_llm_endpoint(
    server: FakeCompletionServer, tokenizer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path, no fakes in the chain: flag -> settings -> load_llm -> endpoint -> records."""
    monkeypatch.setenv("WHAZZAT_SEMANTIC_DEDUP", "false")  # no MiniLM needed for this test
    monkeypatch.setenv("WHAZZAT_HTTP_BACKOFF_INITIAL", "0")
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("batch")(batch)
    needs = tmp_path / "needs.txt"
    needs.write_text("\n".join(NEEDS[:3]) + "\n", encoding="utf-8")
    out = tmp_path / "r.jsonl"

    result = CliRunner().invoke(
        app,
        [
            "batch",
            str(needs),
            "--out",
            str(out),
            "-p",
            "2",
            "--llm-endpoint",
            server.url,
            "--model",
            str(tokenizer_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [record["need"] for record in records] == NEEDS[:3]
    assert records[0]["suggestions"][0]["product"] == "garden trowel"
    rewrites = [request for request in server.requests if "rewrites of this need" in request["prompt"]]
    suggests = len(server.requests) - len(rewrites)
    assert len(rewrites) == 3  # one batched rewrite call, one request per need
    assert suggests == sum(1 + len(record["paraphrases"]) for record in records) >= 5


def test_bad_endpoint_flag_exits_2(tmp_path: Path) -> None:
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("batch")(batch)
    needs = tmp_path / "needs.txt"
    needs.write_text("something to dig food\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["batch", str(needs), "--llm-endpoint", "localhost:8000"])
    assert result.exit_code == 2
    assert "--llm-endpoint must be an http(s) URL" in result.stderr


def test_sampled_parallel_rewrites_are_sent_as_sampling_requests(
    server: FakeCompletionServer, tokenizer_dir: Path
) -> None:
    settings = settings_for(server.url, tokenizer_dir, paraphrases=2, rewrite_strategy="parallel")
    chain = build_chain(
        settings, llm=load_endpoint_llm(settings), backend=LinksBackend(), similarity=exact_similarity
    )
    result = chain.invoke(NEEDS[0])
    rewrites = [request for request in server.requests if "rewrites of this need" in request["prompt"]]
    assert len(rewrites) == 2  # N samples of the same prompt, decoded side by side
    for request in rewrites:
        assert request["temperature"] == settings.temperature > 0
        assert request["top_p"] == 0.95 and request["stop"] == ["\n"]
        assert request["max_tokens"] == settings.max_new_tokens_paraphrase
    assert result.paraphrases  # first lines of the samples, parsed as usual


def test_request_options_map_the_pipeline_spelling() -> None:
    llm = EndpointLLM(endpoint="http://127.0.0.1:1", model_name="whazzat", max_new_tokens=48)
    assert llm.request_options({}, None) == {"model": "whazzat", "max_tokens": 48, "temperature": 0}
    assert llm.request_options({"max_new_tokens": 96}, ["</s>"]) == {
        "model": "whazzat",
        "max_tokens": 96,
        "temperature": 0,
        "stop": ["</s>"],
    }
    assert llm.request_options({"do_sample": False, "temperature": 0.9}, None)["temperature"] == 0
