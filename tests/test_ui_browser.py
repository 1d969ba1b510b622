"""The chat UI in a real browser: Debian's chromium driven by playwright (never ``playwright install``).

Fast and deterministic: ``tests/ui_fake_app.py`` serves the real app (handlers, steps, cards, branding) with
a fake model, searching the ``axesso`` backend on a local fake Axesso server (:mod:`agent.bench.fake_axesso`)
whose listings keep real Amazon picture URLs; the browser gets those pictures from a local PNG and no
request leaves the machine (every other non-local request is aborted). One ``integration`` test runs the
real embedded model with the default ``links`` backend.

Needs ``apt-get install -y chromium`` and ``pip install playwright``; skipped with the reason otherwise.
Leaves screenshots (ui-landing.png, ui-cards.png, ui-links.png, ui.png) and the servers' logs in
``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("the browser test needs Debian's chromium: apt-get install -y chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright: pip install playwright")

from agent.bench.fake_axesso import FakeAxesso, fake_asin

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "public"
ARTIFACTS = ROOT / "test-artifacts"
NEED = "something to dig food"
STEPS = ["Rewrite", "Suggest", "Merge", "Search", "Rank"]
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Never passed to a server: search, login and home are the test's.
ISOLATED_ENV = ("RAPIDAPI_KEY", "WHAZZAT_RAPIDAPI_KEY", "WHAZZAT_HOME", "WHAZZAT_BACKEND", "WHAZZAT_DOMAIN",
                "WHAZZAT_CATALOG", "WHAZZAT_BUDGET", "WHAZZAT_TOP_K", "WHAZZAT_UI_PASSWORD", "CHAINLIT_AUTH_SECRET",
                "WHAZZAT_AXESSO_URL")
#: Also not passed to the fake app, which sets its own (model settings pass through to the real one).
FAKE_APP_ENV = ("WHAZZAT_MEMORY_MODE", "WHAZZAT_PARAPHRASES", "WHAZZAT_NEIGHBOURS_K", "WHAZZAT_SEMANTIC_DEDUP",
                "WHAZZAT_FUSION_RELEVANCE_WEIGHT", "WHAZZAT_HTTP_MAX_ATTEMPTS")
#: Each need of tests/ui_fake_app.py and the product types its chat must show (and no other chat may).
NEED_TYPES = {
    NEED: ("Garden trowel", "Harvest basket", "Garden gloves"),
    "open a bottle of wine": ("Corkscrew", "Wine opener", "Wine glasses"),
    "my back hurts after sitting all day": ("Lumbar support cushion", "Ergonomic chair", "Standing desk"),
}
SERVER_START_S = 120
FAKE_ANSWER_MS = 60_000
#: The real model on a slow, shared CPU: it may convert the model first, then the chain takes minutes.
REAL_SERVER_START_S = 180
REAL_ANSWER_S = 900


def png(width: int = 160, height: int = 120, rgb: tuple[int, int, int] = (204, 228, 224)) -> bytes:
    """A plain PNG: the product picture the fake Amazon image server answers with."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PICTURE = png()
#: This listing's picture fails to load: its card must show the placeholder instead.
BROKEN_PICTURE = fake_asin("Basic garden trowel")


# --- servers -------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the UI server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the UI server did not answer on {url} within {timeout_s} s:\n{log.read_text()[-3000:]}")


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


def server_env(home: Path, isolated: tuple[str, ...] = ISOLATED_ENV, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in isolated}
    env.update({"WHAZZAT_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **settings})
    return env


def installed_app_root(home: Path) -> Path:
    """The app root an installed package gets (``agent/cli/ui.py`` copies its config, welcome page and
    ``public/`` under the home): the fake servers write, and on shutdown delete, their ``.files/`` there
    rather than in the checkout."""
    from agent.cli import ui as cli

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "APP_ROOT", home / "no-checkout")
        return cli.app_root(home)


def start_servers(commands: dict[str, tuple[list[str], dict[str, str]]], timeout_s: float) -> Iterator[dict[str, str]]:
    """Start each named server at once (they load in parallel), wait for all; yield their URLs."""
    ARTIFACTS.mkdir(exist_ok=True)
    running: dict[str, tuple[subprocess.Popen[bytes], str, Path]] = {}
    try:
        for name, (command, env) in commands.items():
            port = free_port()
            log = ARTIFACTS / f"ui-{name}-server.log"
            with log.open("wb") as output:
                server = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port), "--headless"],
                                          cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
            running[name] = (server, f"http://127.0.0.1:{port}/", log)
        for server, url, log in running.values():
            wait_until_serving(url, server, log, timeout_s)
        yield {name: url for name, (_, url, _) in running.items()}
    finally:
        for server, _, _ in running.values():
            stop(server)


@pytest.fixture(scope="module")
def fake_axesso() -> Iterator[FakeAxesso]:
    with FakeAxesso(delay_s=0.3) as server:
        yield server


@pytest.fixture(scope="module")
def fake_uis(fake_axesso: FakeAxesso, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Servers of tests/ui_fake_app.py, by name: "axesso" (listings from the fake Axesso), "links", and
    "down" (its Axesso server is stopped: nothing listens on its port)."""
    command = [sys.executable, "-m", "chainlit", "run", str(ROOT / "tests" / "ui_fake_app.py")]
    app_root = installed_app_root(tmp_path_factory.mktemp("ui-app"))
    stopped = f"http://127.0.0.1:{free_port()}"
    servers = {"axesso": ("axesso", fake_axesso.url), "links": ("links", fake_axesso.url), "down": ("axesso", stopped)}
    commands = {
        name: (command, server_env(tmp_path_factory.mktemp(f"ui-{name}-home"), ISOLATED_ENV + FAKE_APP_ENV,
                                   WHAZZAT_BACKEND=backend, WHAZZAT_AXESSO_URL=url, CHAINLIT_APP_ROOT=str(app_root)))
        for name, (backend, url) in servers.items()
    }
    yield from start_servers(commands, SERVER_START_S)


# --- the browser ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Tab:
    """One browser context (its own cookies, so its own Chainlit session) and its page."""

    context: sync_api.BrowserContext
    page: sync_api.Page
    #: Requests for anything not on this machine (aborted).
    blocked: list[str] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)


def open_tab(browser: sync_api.Browser, url: str, height: int = 1700) -> Tab:
    context = browser.new_context(viewport={"width": 1280, "height": height}, color_scheme="light")
    tab = Tab(context, context.new_page())

    def route(request_route: sync_api.Route) -> None:
        request = request_route.request
        host = urlsplit(request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            request_route.continue_()
        elif host == "m.media-amazon.com":  # the listings' real picture URLs, answered here
            tab.pictures.append(request.url)
            if BROKEN_PICTURE in request.url:
                request_route.fulfill(status=404, body="")
            else:
                request_route.fulfill(status=200, content_type="image/png", body=PICTURE)
        else:
            tab.blocked.append(request.url)
            request_route.abort()

    context.route("**/*", route)
    tab.page.goto(url, wait_until="domcontentloaded")
    tab.page.locator("#chat-input").wait_for(state="visible", timeout=60_000)
    return tab


def ask(page: sync_api.Page, need: str) -> None:
    composer = page.locator("#chat-input")
    composer.click()
    page.keyboard.type(need)
    # The send button is enabled once the websocket is connected; sending earlier is lost.
    send = page.locator("#chat-submit")
    sync_api.expect(send).to_be_enabled(timeout=60_000)
    send.click()


def wait_for_cards(page: sync_api.Page) -> sync_api.Locator:
    """The answer's cards element, once rendered (fails with the page's text if it never comes)."""
    cards = page.locator(".wz-cards")
    try:
        cards.last.wait_for(state="visible", timeout=FAKE_ANSWER_MS)
        sync_api.expect(page.locator("#stop-button")).to_have_count(0, timeout=FAKE_ANSWER_MS)  # the run ended
    except sync_api.TimeoutError:
        pytest.fail(f"no cards within {FAKE_ANSWER_MS / 1000:.0f} s:\n{page.inner_text('body')[-3000:]}")
    return cards.last


def group_titles(page: sync_api.Page) -> set[str]:
    return set(page.locator(".wz-cards h3.wz-group-title").all_inner_texts())


def assert_stayed_local(tab: Tab) -> None:
    # Chainlit's page links KaTeX's stylesheet from a CDN (not configurable); nothing else may go out.
    other = [url for url in tab.blocked if not url.startswith("https://cdn.jsdelivr.net/npm/katex")]
    assert other == [], f"the page asked for non-local resources: {other}"


# --- tests ---------------------------------------------------------------------------------------------------
def test_the_landing_page_is_whazzats(fake_uis: dict[str, str], browser: sync_api.Browser) -> None:
    tab = open_tab(browser, fake_uis["axesso"], height=900)
    page = tab.page
    try:
        sync_api.expect(page).to_have_title("Whazzat")
        logo = page.locator("#welcome-screen img.logo")
        sync_api.expect(logo).to_be_visible()
        tagline = page.locator("#wz-tagline")
        sync_api.expect(tagline).to_contain_text("product types")
        sync_api.expect(tagline).to_contain_text("never buys anything")
        starters = page.locator("#starters button")
        sync_api.expect(starters).to_have_count(3)
        sync_api.expect(starters.first.locator("img")).to_have_attribute("src", re.compile(r"/public/starters/"))
        page.wait_for_timeout(500)  # the fade-in
        page.screenshot(path=str(ARTIFACTS / "ui-landing.png"))

        # The logo and the favicon are the files of public/, not Chainlit's.
        source = logo.get_attribute("src") or ""
        theme = re.search(r"/logo\?theme=(light|dark)(&|$)", source)  # Chainlit's /logo serves public/logo_*
        assert theme, f"unexpected logo URL {source}"
        served = page.request.get(page.url.rstrip("/") + "/logo?theme=" + theme.group(1)).body()
        assert served == (PUBLIC / f"logo_{theme.group(1)}.svg").read_bytes()
        icon = page.locator("link[rel=icon]").get_attribute("href") or ""
        assert page.request.get(page.url.rstrip("/") + icon).body() == (PUBLIC / "favicon.svg").read_bytes()
        assert "chainlit" not in page.inner_text("body").casefold()
        sources = page.eval_on_selector_all("img", "images => images.map(image => image.src)")
        assert not any("chainlit" in src.casefold() for src in sources), sources
        assert_stayed_local(tab)
    finally:
        tab.context.close()


def test_a_cards_answer_shows_prices_stars_and_safe_amazon_links(
    fake_uis: dict[str, str], browser: sync_api.Browser
) -> None:
    tab = open_tab(browser, fake_uis["axesso"])
    page = tab.page
    try:
        ask(page, NEED)
        cards = wait_for_cards(page)
        assert group_titles(page) == set(NEED_TYPES[NEED])
        products = cards.locator("[data-testid=wz-card]")
        sync_api.expect(products).to_have_count(9)  # 3 product types x 3 listings (top K is 9)

        card = products.filter(has_text="Heavy duty garden trowel")
        card.scroll_into_view_if_needed()  # pictures load lazily
        sync_api.expect(card.locator(".wz-price")).to_have_text("$24.99")
        sync_api.expect(card.locator(".wz-stars[role=img]")).to_have_attribute("aria-label", "4.7 out of 5 stars")
        sync_api.expect(card.locator(".wz-reviews")).to_have_text("(3,000 reviews)")
        link = card.locator("a.wz-link")
        sync_api.expect(link).to_have_attribute("href", re.compile(r"^https://www\.amazon\.com/dp/B"))
        sync_api.expect(link).to_have_attribute("target", "_blank")
        sync_api.expect(link).to_have_attribute("rel", "noopener noreferrer")
        picture = card.locator("img.wz-image")
        sync_api.expect(picture).to_have_attribute("alt", "Heavy duty garden trowel")
        sync_api.expect(picture).to_have_js_property("naturalWidth", 160)  # the local PNG, not a broken image
        # A picture that fails to load gives way to a neutral placeholder.
        broken = products.filter(has_text="Basic garden trowel")
        broken.scroll_into_view_if_needed()
        sync_api.expect(broken.locator("[role=img][aria-label='No picture: Basic garden trowel']")).to_be_visible()
        sync_api.expect(broken.locator("img")).to_have_count(0)

        why = card.locator("details.wz-why")
        why.locator("summary").click()
        sync_api.expect(why).to_contain_text("Matches the product type")
        # The Markdown copy of the cards stays in the message, hidden while the cards show.
        sync_api.expect(page.locator(".prose h4").first).to_be_hidden()
        sync_api.expect(page.get_by_text("Here is what could help with").first).to_be_visible()
        assert all(url.startswith("https://m.media-amazon.com/images/I/") for url in tab.pictures) and tab.pictures
        page.screenshot(path=str(ARTIFACTS / "ui-cards.png"))
        assert "Traceback" not in page.inner_text("body")
        assert_stayed_local(tab)
    finally:
        tab.context.close()


def test_the_links_backend_gives_one_compact_card_per_product_type(
    fake_uis: dict[str, str], browser: sync_api.Browser
) -> None:
    tab = open_tab(browser, fake_uis["links"], height=1300)
    page = tab.page
    try:
        ask(page, NEED)
        cards = wait_for_cards(page)
        compact = cards.locator("[data-testid=wz-compact-card]")
        sync_api.expect(compact).to_have_count(3)
        sync_api.expect(cards.locator("[data-testid=wz-card]")).to_have_count(0)
        assert group_titles(page) == set(NEED_TYPES[NEED])
        link = compact.filter(has_text="Garden trowel").locator("a.wz-link")
        sync_api.expect(link).to_have_attribute("href", "https://www.amazon.com/s?k=garden+trowel")
        sync_api.expect(link).to_have_attribute("target", "_blank")
        sync_api.expect(link).to_have_attribute("rel", "noopener noreferrer")
        page.screenshot(path=str(ARTIFACTS / "ui-links.png"))
        assert tab.pictures == []  # search links have no pictures
        assert_stayed_local(tab)
    finally:
        tab.context.close()


def test_the_steps_show_the_paraphrases_and_the_similar_needs(
    fake_uis: dict[str, str], browser: sync_api.Browser
) -> None:
    tab = open_tab(browser, fake_uis["axesso"])
    page = tab.page
    try:
        ask(page, NEED)
        wait_for_cards(page)
        for name in [*STEPS, "Similar needs"]:  # each stage is a collapsible step, "Used Rewrite" and so on
            sync_api.expect(page.get_by_role("button", name=re.compile(rf"\b{name}$")).first).to_be_visible()
        page.get_by_role("button", name=re.compile(r"\bRewrite$")).first.click()
        for paraphrase in ("a tool for digging in the garden", "I need to dig up vegetables"):
            sync_api.expect(page.get_by_text(paraphrase, exact=True).first).to_be_visible()
        page.get_by_role("button", name=re.compile(r"\bSimilar needs$")).first.click()
        neighbour = page.get_by_text(re.compile(r"dig food in the garden \(0\.\d\d\) → garden trowel, harvest basket"))
        sync_api.expect(neighbour.first).to_be_visible()
    finally:
        tab.context.close()


def test_three_chats_at_once_each_see_only_their_own_product_types(
    fake_uis: dict[str, str], browser: sync_api.Browser
) -> None:
    tabs = {need: open_tab(browser, fake_uis["axesso"]) for need in NEED_TYPES}
    try:
        for need, tab in tabs.items():  # all three asked before any answer is read
            ask(tab.page, need)
        for need, tab in tabs.items():
            wait_for_cards(tab.page)
            assert group_titles(tab.page) == set(NEED_TYPES[need]), need
            text = tab.page.inner_text("body").casefold()
            others = [t for other, types in NEED_TYPES.items() if other != need for t in types]
            assert not [t for t in others if t.casefold() in text], f"{need!r} shows another chat's types"
            assert need in tab.page.inner_text("body")
    finally:
        for tab in tabs.values():
            tab.context.close()


def test_a_stopped_search_server_gives_a_visible_warning_not_a_spinner(
    fake_uis: dict[str, str], browser: sync_api.Browser
) -> None:
    tab = open_tab(browser, fake_uis["down"])
    page = tab.page
    try:
        ask(page, "a gift for a coffee lover")
        warning = page.get_by_text("Search unavailable").filter(visible=True)
        try:
            warning.first.wait_for(state="visible", timeout=FAKE_ANSWER_MS)
        finally:
            page.screenshot(path=str(ARTIFACTS / "ui-search-down.png"))
        sync_api.expect(page.locator("#stop-button")).to_have_count(0, timeout=FAKE_ANSWER_MS)  # nothing still spins
        sync_api.expect(page.locator("#chat-submit")).to_be_visible()
        assert "Sorry, something went wrong" not in page.inner_text("body")
    finally:
        tab.context.close()


# --- the real model ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_ui(embedded_home: Path) -> Iterator[str]:
    """``whazzat ui`` with the real embedded model and the default links backend; its URL."""
    command = [sys.executable, "-m", "agent.cli.ui"]
    env = server_env(embedded_home, WHAZZAT_BACKEND="links")  # `whazzat ui` sets CHAINLIT_APP_ROOT itself
    yield from (urls["real"] for urls in start_servers({"real": (command, env)}, REAL_SERVER_START_S))


@pytest.mark.integration
def test_the_real_model_answers_with_compact_amazon_cards(real_ui: str, browser: sync_api.Browser) -> None:
    tab = open_tab(browser, real_ui, height=1800)
    page = tab.page
    try:
        ask(page, NEED)
        deadline = time.monotonic() + REAL_ANSWER_S
        while not page.get_by_text("Worked on").count():
            if page.get_by_text("Sorry, something went wrong").count():
                pytest.fail("the UI answered with an error; see test-artifacts/ui-real-server.log")
            if time.monotonic() > deadline:
                pytest.fail(f"no answer within {REAL_ANSWER_S} s")
            page.wait_for_timeout(2000)
        cards = wait_for_cards(page)
        page.screenshot(path=str(ARTIFACTS / "ui.png"))
        for name in STEPS:
            sync_api.expect(page.get_by_role("button", name=re.compile(rf"\b{name}$")).first).to_be_visible()
        links = cards.locator('[data-testid=wz-compact-card] a.wz-link[href^="https://www.amazon.com/s?"]')
        if links.count() < 3:
            pytest.fail(f"expected at least 3 Amazon search cards, got {links.count()}:\n{page.inner_text('body')}")
        assert "Traceback" not in page.inner_text("body")
        assert_stayed_local(tab)
    finally:
        tab.context.close()
