"""A fake OpenAI-compatible completion server on pytest-httpserver, for testing the endpoint backend offline.

It speaks the part of vLLM's API that Whazzat uses (``GET /v1/models``, ``POST /v1/completions``), or, with
``tgi=True``, TGI's (``GET /info`` and no model list). Completions come from
:class:`tests.fakes.FakeWhazzatLLM`, so answers look like the fine-tuned model's. It records every prompt
completed and the most requests it ever had in flight at once (to check that batches go out concurrently).

Test modules import the fixture by function name (``fixture_openai_httpserver`` provides
``openai_httpserver``: one threaded server per session) and build a :class:`FakeCompletionServer` on it per test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.fakes import FakeWhazzatLLM
from tests.httpserver import threaded_httpserver

#: What the fake vLLM serves: a base model and the LoRA adapter on top of it.
MODELS = [
    {"id": "HuggingFaceTB/SmolLM2-135M-Instruct", "object": "model", "root": "base-dir", "parent": None},
    {
        "id": "whazzat",
        "object": "model",
        "root": "/adapters/smollm2-135m-whazzat",
        "parent": "HuggingFaceTB/SmolLM2-135M-Instruct",
    },
]
TGI_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
CHAT_MARKERS = ("<|im_start|>", "<|im_end|>")


@pytest.fixture(scope="session", name="openai_httpserver")
def fixture_openai_httpserver() -> Iterator[HTTPServer]:
    """A threaded local HTTP server for the session, so concurrent requests overlap."""
    with threaded_httpserver() as server:
        yield server


class FakeCompletionServer:
    """The vLLM (or TGI) API on ``httpserver``, cleared first; inspect ``requests`` and ``max_in_flight``."""

    def __init__(
        self,
        httpserver: HTTPServer,
        *,
        tgi: bool = False,
        delay: float = 0.05,
        models: list[dict[str, Any]] | None = None,
    ) -> None:
        self.tgi = tgi
        self.delay = delay  # seconds per completion, so concurrent requests overlap measurably
        self.models = MODELS if models is None else models
        self.llm = FakeWhazzatLLM()
        #: One entry per prompt completed: the request's body with that prompt as a string.
        self.requests: list[dict[str, Any]] = []
        self.failures: list[int] = []  # statuses to answer the next completions with, in order
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpserver = httpserver
        httpserver.clear()
        httpserver.expect_request("/v1/models", method="GET").respond_with_handler(self._models)
        httpserver.expect_request("/info", method="GET").respond_with_handler(self._info)
        httpserver.expect_request("/v1/completions", method="POST").respond_with_handler(self._complete)

    @property
    def url(self) -> str:
        return self.httpserver.url_for("").rstrip("/")

    def completion(self, prompt: str) -> str:
        for marker in CHAT_MARKERS:
            prompt = prompt.replace(marker, "\n")
        return self.llm._call(prompt)

    # --- handlers ------------------------------------------------------------------------------------
    def _models(self, request: Request) -> Response:
        if self.tgi:
            return _json(404, {"error": "Not Found"})
        return _json(200, {"object": "list", "data": self.models})

    def _info(self, request: Request) -> Response:
        if not self.tgi:
            return _json(404, {"error": "Not Found"})
        return _json(200, {"model_id": TGI_MODEL, "max_input_tokens": 2048})

    def _complete(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        with self._lock:
            self.requests.extend({**body, "prompt": prompt} for prompt in prompts)
            failure = self.failures.pop(0) if self.failures else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if failure is not None:
                return _json(failure, {"object": "error", "message": f"fake failure {failure}", "code": failure})
            if not self.tgi and body.get("model") not in {model["id"] for model in self.models}:
                return _json(404, {"object": "error", "message": f"The model `{body.get('model')}` does not exist."})
            choices = [
                {"index": index, "text": self.completion(prompt), "finish_reason": "stop", "logprobs": None}
                for index, prompt in enumerate(prompts)
            ]
            usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            return _json(
                200,
                {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body["model"],
                 "choices": choices, "usage": usage},
            )
        finally:
            with self._lock:
                self.in_flight -= 1


def _json(status: int, body: object) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
