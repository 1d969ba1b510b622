"""Secrets: a recognisable fake RAPIDAPI_KEY goes through every command that runs offline, against a
local Axesso server that echoes the key back in its error messages, and then everything written is
searched for it: stdout, stderr, exceptions, logs at DEBUG, the search cache, batch output (JSONL and
CSV), eval output, the feedback file and its export.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from urllib.parse import quote

import typer
from typer.main import get_command
from typer.testing import Result
from werkzeug import Request, Response

from agent.bench.fake_axesso import SEARCH_PATH, product, search_page
from agent.cli.main import app
from agent.core.config import get_settings
from agent.pipeline.feedback import FeedbackRecord, append_feedback, feedback_path
from tests.conftest_axesso import (  # noqa: F401 - fixtures are found by name
    fixture_axesso_server,
    fixture_server,
)
from tests.fakes import FakeWhazzatLLM
from tests.hardening_helpers import axesso_env, invoke, runner, use_fake_model
from tools.axesso import AxessoBackend
from tools.axesso_tool import AxessoSearchTool
from tools.registry import axesso_options

KEY = "rk-LEAKCANARY-7f3a9c1e5b2d4f60"
FORMS = (KEY, quote(KEY), KEY[8:24])  # as typed, URL-encoded, and a long piece of it
NEED = "something to dig food"  # the fake model proposes 4 product types for it


def echoing_axesso(request: Request) -> Response:
    """Axesso answering one product type, and refusing the others with messages that quote the key."""
    key = request.headers.get("X-RapidAPI-Key", "")
    keyword = request.args["keyword"]
    if keyword == "garden trowel":
        return Response(
            json.dumps(search_page([product()], keyword=keyword)), content_type="application/json"
        )
    status = {"hand rake": 400, "kneeling pad": 500}.get(keyword, 401)
    body = {"logref": "error", "message": f"request with key {key} refused", "key": key}
    return Response(
        json.dumps(body), status=status, content_type="application/json", headers={"X-Echo-Key": key}
    )


def every_command_path(command=None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """("ask",), ("batch",), ("feedback", "export") ...: every registered command, found by walking the CLI."""
    command = command or get_command(app)
    paths = []
    for name, sub in getattr(command, "commands", {}).items():
        paths.append((*prefix, name))
        paths += every_command_path(sub, (*prefix, name))
    return paths


def texts_of(result: Result) -> list[str]:
    texts = [result.stdout, result.stderr, result.output, repr(result.exception)]
    if result.exc_info and result.exc_info[1] is not None:
        texts.append("".join(traceback.format_exception(*result.exc_info)))
    return texts


def assert_no_key(text: str, where: str) -> None:
    for form in FORMS:
        assert form not in text, f"the key leaked into {where}"


def test_the_key_appears_nowhere(server, tmp_path: Path, isolated_home: Path, monkeypatch, caplog) -> None:
    server.expect_request(SEARCH_PATH).respond_with_handler(echoing_axesso)
    caplog.set_level(logging.DEBUG)
    use_fake_model(monkeypatch, FakeWhazzatLLM(prompts=[]))
    axesso_env(monkeypatch, server.url_for(""), key=KEY)
    needs = tmp_path / "needs.txt"
    needs.write_text(f"{NEED}\na quiet fan for my bedroom\n\x01bad row\n", encoding="utf-8")
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        json.dumps({"need": NEED, "products": ["garden trowel", "shovel"]})
        + "\n"
        + json.dumps({"need": "a quiet fan for my bedroom", "products": ["fan"]})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    out.mkdir()

    runs: dict[str, Result] = {}
    for path in every_command_path():
        runs[" ".join(path) + " --help"] = invoke([*path, "--help"])
    runs["--help"] = invoke(["--help"])
    runs["ask axesso json"] = invoke(["ask", NEED, "--backend", "axesso", "-p", "1", "--json"])
    runs["ask axesso table"] = invoke(["ask", NEED, "--backend", "axesso", "-p", "0", "--no-cache"])
    runs["suggest json"] = invoke(["suggest", NEED, "--json"])
    runs["suggest table"] = invoke(["suggest", NEED, "-p", "1"])
    runs["ask bad flag"] = invoke(["ask", NEED, "--backend", "axesso", "--budget", "-1"])
    runs["ask bad need"] = invoke(["ask", "\x00", "--backend", "axesso"])
    runs["batch jsonl"] = invoke(["batch", needs, "--out", out / "r.jsonl", "--backend", "axesso", "-p", "1"])
    runs["batch csv"] = invoke(
        ["batch", needs, "--out", out / "r.csv", "--backend", "axesso", "--no-adapter"]
    )
    runs["batch stdout"] = invoke(["batch", needs, "--backend", "axesso", "-p", "0"])
    runs["eval json"] = invoke(["eval", gold, "-p", "0", "--json"])
    runs["eval table"] = invoke(["eval", gold, "-p", "1"])

    # The answers the UI records as feedback, and their export to training rows.
    answer = json.loads(runs["ask axesso json"].stdout)
    settings = get_settings()
    append_feedback(
        FeedbackRecord(
            answer_id="a1",
            need=answer["need"],
            paraphrases=answer["paraphrases"],
            products=[s["product"] for s in answer["suggestions"]],
            urls=[listing["url"] for listing in answer["listings"]],
            verdict="up",
            settings={"backend": settings.backend, "domain": settings.domain},
        ),
        feedback_path(settings.home_dir),
    )
    from agent.cli.ui import feedback_export

    feedback_app = typer.Typer()
    feedback_app.command()(feedback_export)
    runs["feedback export"] = runner.invoke(feedback_app, [str(out / "training.jsonl")])

    # With Axesso down as well.
    axesso_env(monkeypatch, "http://127.0.0.1:9", key=KEY)
    runs["ask axesso down"] = invoke(["ask", NEED, "--backend", "axesso", "-p", "0", "--json", "--no-cache"])

    # The key was really in use: the server received it, and the commands worked.
    assert any(request.headers.get("X-RapidAPI-Key") == KEY for request, _ in server.log)
    for name in ("ask axesso json", "ask axesso table", "suggest json", "eval json", "ask axesso down"):
        assert runs[name].exit_code == 0, (name, runs[name].output, runs[name].exception)
    assert runs["batch jsonl"].exit_code == 1 and runs["ask bad flag"].exit_code == 2
    assert runs["feedback export"].exit_code == 0, runs["feedback export"].output
    assert any("refused" in warning for warning in answer["warnings"])  # the echoed messages got through...

    # ...and yet the key is nowhere.
    for name, result in runs.items():
        for text in texts_of(result):
            assert_no_key(text, name)
    assert_no_key(caplog.text, "the logs")
    for record in caplog.records:
        assert_no_key(record.getMessage() + repr(record.args) + str(record.exc_text), "a log record")
    written = [path for root in (isolated_home, tmp_path) for path in root.rglob("*") if path.is_file()]
    assert {path.name for path in written} >= {
        "search-cache.sqlite3",
        "r.jsonl",
        "r.csv",
        "feedback.jsonl",
        "training.jsonl",
    }
    for path in written:
        data = path.read_bytes()
        for form in FORMS:
            assert form.encode() not in data, f"the key leaked into {path}"


def test_the_key_is_not_in_reprs_dumps_or_errors(monkeypatch, isolated_home: Path) -> None:
    monkeypatch.setenv("RAPIDAPI_KEY", KEY)
    settings = get_settings(backend="axesso")
    assert settings.rapidapi_key.get_secret_value() == KEY
    backend = AxessoBackend(axesso_options(settings))
    tool = AxessoSearchTool(options=axesso_options(settings))
    for text in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
        repr(backend),
        repr(backend._client),
        repr(tool),
        str(tool.args_schema.model_json_schema()),
    ):
        assert_no_key(text, "a repr or dump")
