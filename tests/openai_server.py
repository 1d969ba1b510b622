"""A tiny OpenAI-compatible completion server on 127.0.0.1, for testing the endpoint backend offline.

It speaks the part of vLLM's API that Whazzat uses (``GET /v1/models``, ``POST /v1/completions``), or, with
``tgi=True``, TGI's (``GET /info`` and no model list). Completions come from
:class:`tests.fakes.FakeWhazzatLLM`, so answers look like the fine-tuned model's. It records every request
and the most requests it ever had in flight at once (to check that batches go out concurrently).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes import FakeWhazzatLLM

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
CHAT_MARKERS = ("<|im_start|>", "<|im_end|>")


class FakeCompletionServer:
    """Start with :func:`running`; inspect ``requests`` and ``max_in_flight`` afterwards."""

    def __init__(self, *, tgi: bool = False, delay: float = 0.05, models: list[dict] | None = None) -> None:
        self.tgi = tgi
        self.delay = delay  # seconds per completion, so concurrent requests overlap measurably
        self.models = MODELS if models is None else models
        self.llm = FakeWhazzatLLM()
        self.requests: list[dict[str, Any]] = []
        self.failures: list[int] = []  # statuses to answer the next completions with, in order
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def completion(self, prompt: str) -> str:
        for marker in CHAT_MARKERS:
            prompt = prompt.replace(marker, "\n")
        return self.llm._call(prompt)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/v1/models" and not server.tgi:
                    self._send(200, {"object": "list", "data": server.models})
                elif self.path == "/info" and server.tgi:
                    self._send(
                        200, {"model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "max_input_tokens": 2048}
                    )
                else:
                    self._send(404, {"error": "Not Found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/completions":
                    self._send(404, {"error": "Not Found"})
                    return
                with server._lock:
                    server.requests.append(body)
                    failure = server.failures.pop(0) if server.failures else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    if failure is not None:
                        message = {"object": "error", "message": f"fake failure {failure}", "code": failure}
                        self._send(failure, message)
                    elif body.get("model") not in {m["id"] for m in server.models} and not server.tgi:
                        self._send(
                            404,
                            {
                                "object": "error",
                                "message": f"The model `{body.get('model')}` does not exist.",
                            },
                        )
                    else:
                        text = server.completion(body["prompt"])
                        self._send(
                            200,
                            {
                                "id": "cmpl-1",
                                "object": "text_completion",
                                "model": body["model"],
                                "choices": [
                                    {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
                                ],
                                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                            },
                        )
                finally:
                    with server._lock:
                        server.in_flight -= 1

        return Handler


@contextmanager
def running(server: FakeCompletionServer) -> Iterator[FakeCompletionServer]:
    thread = threading.Thread(target=server._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._server.shutdown()
        server._server.server_close()
        thread.join(timeout=5)
