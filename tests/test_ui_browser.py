"""The chat UI end to end, in a real browser: ``whazzat ui --headless`` with the real embedded model as a
subprocess on 127.0.0.1, driven by Debian's chromium through playwright (never ``playwright install``).

Needs ``apt-get install -y chromium`` and ``pip install playwright``; skipped with the reason otherwise.
Leaves ``test-artifacts/ui.png`` (the answer) and ``test-artifacts/ui-server.log`` (the server's output).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("the browser test needs Debian's chromium: apt-get install -y chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright: pip install playwright")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
NEED = "something to dig food"
STEPS = ["Rewrite", "Suggest", "Merge", "Search", "Rank"]
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
ISOLATED_ENV = ("RAPIDAPI_KEY", "WHAZZAT_RAPIDAPI_KEY", "WHAZZAT_HOME", "WHAZZAT_BACKEND", "WHAZZAT_DOMAIN",
                "WHAZZAT_CATALOG", "WHAZZAT_BUDGET", "WHAZZAT_TOP_K", "WHAZZAT_UI_PASSWORD", "CHAINLIT_AUTH_SECRET")
#: The CPU is slow and shared: the server may convert the model first, then the chain takes minutes.
SERVER_START_S = 180
ANSWER_S = 900


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ui_command(port: int) -> list[str]:
    """``whazzat ui`` once the CLI registers it, else the same command through its module."""
    args = ["--host", "127.0.0.1", "--port", str(port), "--headless"]
    whazzat = shutil.which("whazzat")
    if whazzat:
        listed = subprocess.run([whazzat, "--help"], check=False, capture_output=True, text=True, timeout=60).stdout
        if " ui " in listed:
            return [whazzat, "ui", *args]
    return [sys.executable, "-m", "agent.cli.ui", *args]


def wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the UI server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    pytest.fail(f"the UI server did not answer on {url} within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server by its PID: SIGTERM (uvicorn shuts down cleanly), then SIGKILL if it hangs."""
    if server.poll() is not None:
        return
    os.kill(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def ui_server(embedded_home: Path) -> Iterator[str]:
    """A UI server with the real embedded model and the links backend; its URL."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    # Model settings (WHAZZAT_ADAPTER, WHAZZAT_PARAPHRASES...) pass through; search, login and home do not.
    env = {key: value for key, value in os.environ.items() if key not in ISOLATED_ENV}
    env.update({"WHAZZAT_HOME": str(embedded_home), "WHAZZAT_BACKEND": "links", "HF_HUB_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1"})
    log = ARTIFACTS / "ui-server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(ui_command(port), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_serving(url, server, log)
        yield url
    finally:
        stop(server)


def wait_for_answer(page: sync_api.Page) -> None:
    """Until the working message says it is done (or shows a friendly error)."""
    deadline = time.monotonic() + ANSWER_S
    while time.monotonic() < deadline:
        if page.get_by_text("Worked on").count():
            return
        if page.get_by_text("Sorry, something went wrong").count():
            pytest.fail("the UI answered with an error; see test-artifacts/ui-server.log")
        page.wait_for_timeout(2000)
    pytest.fail(f"no answer within {ANSWER_S} s")


def test_a_need_gets_steps_and_amazon_links_in_a_real_browser(ui_server: str) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1800})
            page.goto(ui_server, wait_until="domcontentloaded")
            composer = page.locator("#chat-input")
            composer.wait_for(state="visible", timeout=60_000)
            composer.click()
            page.keyboard.type(NEED)
            # The send button is enabled once the websocket is connected; sending earlier is lost.
            send = page.locator("#chat-submit")
            sync_api.expect(send).to_be_enabled(timeout=60_000)
            send.click()
            try:
                page.get_by_text("Working on").first.wait_for(state="visible", timeout=60_000)
                wait_for_answer(page)
            finally:
                page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)

            for name in STEPS:  # each stage is a collapsible step, "Used Rewrite" and so on
                step = page.get_by_role("button", name=re.compile(rf"\b{name}$"))
                sync_api.expect(step.first).to_be_visible()
            links = page.locator('a[href^="https://www.amazon.com/"]')
            if links.count() < 3:
                page.get_by_role("button", name=re.compile(r"\bSuggest$")).first.click()  # what the model said
                pytest.fail(f"expected at least 3 Amazon links, got {links.count()}:\n{page.inner_text('body')}")
            assert "Traceback" not in page.inner_text("body")
        finally:
            browser.close()
