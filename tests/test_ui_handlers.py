"""The chat UI's handlers, called directly inside a Chainlit context with a recording emitter
(Chainlit has no test client), a fake model and a fake shop: steps, cards, settings,
follow-ups, feedback, errors, and the pure helpers (cards, follow-up parsing, settings, CLI)."""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chainlit", reason="the UI needs chainlit: pip install 'chainlit>=2.10.1'")

from chainlit.context import ChainlitContext, context_var
from chainlit.emitter import BaseChainlitEmitter
from chainlit.session import HTTPSession

from agent.core.config import get_settings
from agent.core.schemas import Listing, Suggestion
from agent.pipeline.feedback import feedback_path, read_feedback
from agent.ui import handlers
from agent.ui.cards import escape_text, render_answer, safe_url
from agent.ui.chat_settings import ChatPreferences, SettingsError
from agent.ui.followups import Cheaper, More, NewNeed, parse_followup
from agent.ui.services import Services
from agent.ui.session_state import get_state
from tests.conftest import exact_similarity
from tests.fakes import FakeWhazzatLLM
from tools.base import SearchBackend, SearchOutcome, SearchQuery

NEED = "something to dig food"
STAGES = ["Rewrite", "Suggest", "Merge", "Search", "Rank"]  # the model alone (tests run without a memory)


# --- a Chainlit context that records what would reach the browser -----------------------------------------
class RecordingEmitter(BaseChainlitEmitter):
    """Keeps every step, message, action and toast; answers "ask" prompts from ``replies``."""

    def __init__(self, session: HTTPSession) -> None:
        super().__init__(session)
        self.sent: list[dict[str, Any]] = []
        self.updated: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.toasts: list[str] = []
        self.settings_panels: list[Any] = []
        self.replies: list[str] = []

    async def send_step(self, step_dict):
        self.sent.append(dict(step_dict))

    async def update_step(self, step_dict):
        self.updated.append(dict(step_dict))

    async def emit(self, event: str, data: Any):
        if event == "action":
            self.actions.append(data)
        elif event == "chat_settings":
            self.settings_panels.append(data)

    def set_chat_settings(self, settings):
        self.session.chat_settings = settings

    async def send_toast(self, message: str, type: Any = "info"):
        self.toasts.append(message)

    async def send_ask_user(self, step_dict, spec, raise_on_timeout=False):
        self.sent.append(dict(step_dict))
        return {"output": self.replies.pop(0)} if self.replies else None

    # --- what the tests read ---
    def messages(self) -> list[str]:
        """Each assistant message's latest text, in the order they were first sent."""
        latest: dict[str, str] = {}
        for step in [*self.sent, *self.updated]:
            if step.get("type") == "assistant_message":
                latest[step["id"]] = step["output"]
        return list(latest.values())

    def steps(self) -> list[str]:
        return [s["name"] for s in self.sent if s.get("type") == "tool"]

    def finished_steps(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.updated if s.get("type") == "tool" and s.get("end")}


class Chat:
    """One browser tab: its own Chainlit session and context."""

    def __init__(self) -> None:
        self.session = HTTPSession(id=str(uuid.uuid4()), thread_id=str(uuid.uuid4()), client_type="webapp")
        self.emitter = RecordingEmitter(self.session)
        self.use()

    def use(self) -> Chat:
        context_var.set(ChainlitContext(self.session, emitter=self.emitter))
        return self


# --- fakes -------------------------------------------------------------------------------------------
class FakeShop(SearchBackend):
    """Three priced listings per product type and page; a title carries markup that must stay text."""

    name = "fake-shop"

    def __init__(self) -> None:
        self.queries: list[SearchQuery] = []

    def search(self, query: SearchQuery) -> SearchOutcome:
        self.queries.append(query)
        slug = query.keyword.replace(" ", "-")
        listings = [
            Listing(
                product=query.keyword,
                title=f"{query.keyword} model {n} p{query.page} [click](javascript:alert(1)) <b>bold</b>",
                url=f"https://www.amazon.{query.domain}/dp/{slug}-{query.page}-{n}",
                price=price,
                rating=4.5,
                reviews=100 * n,
                image=f"https://m.media-amazon.com/images/{slug}-{n}.jpg",
                asin=f"{slug}-{query.page}-{n}",
            )
            for n, price in enumerate((9.99, 19.99, 39.99), start=1)
        ]
        return SearchOutcome(listings=listings)


def same_relevance(titles: list[str], products: list[str]) -> list[float]:
    return [1.0] * len(titles)


def make_services(backend: SearchBackend | None = None, llm: Any = None, **overrides: Any) -> Services:
    settings = get_settings(paraphrases=3, semantic_dedup=False, **overrides)
    factory = (lambda settings: backend) if backend is not None else None
    return Services(settings, llm=llm or FakeWhazzatLLM(prompts=[]), backend_factory=factory,
                    similarity=exact_similarity, relevance=same_relevance)


@pytest.fixture
def shop() -> FakeShop:
    return FakeShop()


@pytest.fixture(autouse=True)
def no_minilm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain's rank stage scores relevance with MiniLM; these tests need no embedder."""
    monkeypatch.setattr("agent.pipeline.ranking.minilm_relevance", same_relevance)


# --- a new need ------------------------------------------------------------------------------------------
async def test_a_need_shows_every_stage_as_a_step_then_cards(shop: FakeShop) -> None:
    chat, services = Chat(), make_services(shop)
    await handlers.start_chat(services)
    await handlers.handle_message(NEED, services)

    assert chat.emitter.steps() == ["Load the model", *STAGES]  # the model loads on first use only
    finished = chat.emitter.finished_steps()
    assert set(finished) == {"Load the model", *STAGES}
    assert not any(step["isError"] for step in finished.values())
    assert "a tool for digging in the garden" in finished["Rewrite"]["output"]
    assert "garden trowel: " in finished["Merge"]["output"]  # product types with votes
    assert "✓ garden trowel: 3 results" in finished["Search"]["output"]
    assert "score" in finished["Rank"]["output"]

    answer = chat.emitter.messages()[-1]
    assert "#### Garden trowel" in answer
    assert "https://www.amazon.com/dp/garden-trowel-1-1" in answer
    assert "![" in answer and "https://m.media-amazon.com/images/garden-trowel-1.jpg" in answer
    assert "$9.99" in answer and "★ 4.5" in answer
    assert "**Why these?**" in answer
    state = get_state()
    assert state is not None and state.current is not None
    assert {a["name"] for a in chat.emitter.actions} == {handlers.FEEDBACK_UP, handlers.FEEDBACK_DOWN,
                                                         handlers.FEEDBACK_COMMENT}
    assert all(a["payload"] == {"answer_id": state.current.id} for a in chat.emitter.actions)


async def test_api_titles_are_shown_as_text_never_markup(shop: FakeShop) -> None:
    chat, services = Chat(), make_services(shop)
    await handlers.handle_message(NEED, services)
    answer = chat.emitter.messages()[-1]
    assert "[click](javascript" not in answer and "<b>" not in answer
    assert r"\[click\]\(javascript\:alert\(1\)\) \<b\>bold\<\/b\>" in answer


async def test_settings_panel_values_are_honoured() -> None:
    chat = Chat()
    llm = FakeWhazzatLLM(prompts=[])
    services = make_services(llm=llm)  # the real links backend
    await handlers.start_chat(services)
    assert chat.emitter.settings_panels, "the settings panel is sent on chat start"
    await handlers.update_settings({"paraphrases": 0, "domain": "de", "top_k": 2, "backend": "links"}, services)
    await handlers.handle_message(NEED, services)

    assert not any("rewrites of this need" in prompt for prompt in llm.prompts)  # no rewrite asked
    state = get_state()
    assert state is not None and state.current is not None
    assert len(state.current.listings) == 2
    assert all(listing.url.startswith("https://www.amazon.de/s?k=") for listing in state.current.listings)
    assert "Rewrites are off" in chat.emitter.finished_steps()["Rewrite"]["output"]


async def test_a_bad_setting_is_refused_with_the_reason() -> None:
    chat, services = Chat(), make_services()
    await handlers.start_chat(services)
    await handlers.update_settings({"top_k": 0}, services)
    state = get_state()
    assert state is not None and state.preferences.top_k == services.settings.top_k
    assert "not applied" in chat.emitter.messages()[-1] and "top k" in chat.emitter.messages()[-1]


async def test_an_unconfigured_catalog_backend_falls_back_to_links_with_a_note() -> None:
    chat, services = Chat(), make_services()
    await handlers.update_settings({"backend": "catalog"}, services)
    assert "WHAZZAT\\_CATALOG" in chat.emitter.messages()[-1]
    await handlers.handle_message(NEED, services)
    state = get_state()
    assert state is not None and state.current is not None
    assert state.current.listings[0].url.startswith("https://www.amazon.com/s?k=")


# --- follow-ups ------------------------------------------------------------------------------------------
async def test_under_a_budget_reranks_the_same_results(shop: FakeShop) -> None:
    chat, services = Chat(), make_services(shop)
    await handlers.handle_message(NEED, services)
    searches = len(shop.queries)
    await handlers.handle_message("under $15", services)

    assert len(shop.queries) == searches, "a budget re-ranks; it does not search again"
    state = get_state()
    assert state is not None and state.current is not None and state.budget == 15
    assert state.current.listings and all((x.price or 0) <= 15 for x in state.current.listings)
    assert "At or under $15.00" in chat.emitter.messages()[-1]
    assert chat.emitter.steps()[-1] == "Rank"


async def test_cheaper_uses_the_median_price_shown(shop: FakeShop) -> None:
    Chat()
    services = make_services(shop)
    await handlers.handle_message(NEED, services)
    state = get_state()
    assert state is not None and state.current is not None
    median = statistics.median(x.price or 0 for x in state.current.listings)
    await handlers.handle_message("cheaper please", services)
    assert state.budget == median
    assert max(x.price or 0 for x in state.current.listings) <= median


async def test_cheaper_on_search_links_explains_why_not() -> None:
    chat, services = Chat(), make_services()
    await handlers.handle_message(NEED, services)
    await handlers.handle_message("cheaper", services)
    assert "without prices" in chat.emitter.messages()[-1]


async def test_more_of_a_product_type_fetches_its_next_page(shop: FakeShop) -> None:
    chat, services = Chat(), make_services(shop)
    await handlers.handle_message(NEED, services)
    await handlers.handle_message("more garden trowels", services)

    assert shop.queries[-1].keyword == "garden trowel" and shop.queries[-1].page == 2
    answer = chat.emitter.messages()[-1]
    assert answer.startswith("**More garden trowel:**")
    assert "garden-trowel-2-1" in answer
    await handlers.handle_message("more garden trowel", services)
    assert shop.queries[-1].page == 3


async def test_more_with_the_links_backend_says_there_is_nothing_new() -> None:
    chat, services = Chat(), make_services()
    await handlers.handle_message(NEED, services)
    await handlers.handle_message("more garden trowel", services)
    assert "No more listings of garden trowel" in chat.emitter.messages()[-1]


async def test_a_new_need_starts_over(shop: FakeShop) -> None:
    Chat()
    services = make_services(shop)
    await handlers.handle_message(NEED, services)
    await handlers.handle_message("more garden trowel", services)
    await handlers.handle_message("a desk for a small room", services)
    state = get_state()
    assert state is not None and state.current is not None
    assert state.current.need == "a desk for a small room" and state.pages == {}


async def test_a_follow_up_before_any_need_asks_for_a_need() -> None:
    chat, services = Chat(), make_services()
    await handlers.handle_message("cheaper", services)
    assert "Tell me what you need first" in chat.emitter.messages()[-1]


async def test_two_chats_never_see_each_others_results(shop: FakeShop) -> None:
    services = make_services(shop)
    alice = Chat()
    await handlers.handle_message(NEED, services)
    alice_state = get_state()
    assert alice_state is not None and alice_state.current is not None

    bob = Chat()
    assert get_state() is None
    await handlers.handle_message("under $15", services)
    assert "Tell me what you need first" in bob.emitter.messages()[-1]
    assert not await handlers.record_verdict(alice_state.current.id, "up", services)
    assert not any("garden" in message for message in bob.emitter.messages())

    alice.use()
    assert get_state() is alice_state


# --- feedback ----------------------------------------------------------------------------------------------
async def test_votes_and_comments_are_appended_to_the_feedback_file(shop: FakeShop) -> None:
    chat, services = Chat(), make_services(shop)
    await handlers.handle_message(NEED, services)
    state = get_state()
    assert state is not None and state.current is not None
    answer_id = state.current.id

    assert await handlers.record_verdict(answer_id, "up", services)
    chat.emitter.replies.append("  Great, but I wanted a spade too.  ")
    assert await handlers.ask_comment(answer_id, services)

    records, skipped = read_feedback(feedback_path(services.settings.home_dir))
    assert skipped == 0 and [r.verdict for r in records] == ["up", "up"]
    first, second = records
    assert first.answer_id == second.answer_id == answer_id
    assert first.need == NEED and first.paraphrases and "garden trowel" in first.products
    assert first.urls[0].startswith("https://www.amazon.com/dp/")
    assert first.comment is None and second.comment == "Great, but I wanted a spade too."
    assert first.settings["backend"] == "links" and first.settings["paraphrases"] == 3
    assert chat.emitter.toasts


async def test_a_thumbs_up_teaches_the_shared_memory_at_once(shop: FakeShop, isolated_home) -> None:  # noqa: ANN001
    from agent.pipeline.memory import build_memory
    from tests.fakes import WordEmbeddings

    Chat()
    memory = build_memory(isolated_home, splits=(), embeddings=WordEmbeddings())
    services = make_services(shop, memory_mode="fused")
    services._memory = memory
    await handlers.handle_message(NEED, services)
    state = get_state()
    assert state is not None and state.current is not None
    assert memory.search([NEED], 1) == [[]]  # nothing known yet

    assert await handlers.record_verdict(state.current.id, "up", services)
    [[known]] = memory.search([NEED], 1)
    assert known.need == NEED and known.source == "feedback" and "garden trowel" in known.products
    assert await handlers.record_verdict(state.current.id, "up", services)  # liked twice: stored once
    assert memory.stats().rows == 1


async def test_an_empty_comment_writes_nothing(shop: FakeShop) -> None:
    Chat()
    services = make_services(shop)
    await handlers.handle_message(NEED, services)
    state = get_state()
    assert state is not None and state.current is not None
    assert not await handlers.ask_comment(state.current.id, services)  # timed out: no reply
    assert not feedback_path(services.settings.home_dir).exists()


async def test_feedback_on_an_unknown_answer_is_refused() -> None:
    chat, services = Chat(), make_services()
    assert not await handlers.record_verdict("not-an-answer", "down", services)
    assert "no longer in this chat" in chat.emitter.messages()[-1]


# --- errors ------------------------------------------------------------------------------------------------
class BrokenLLM(FakeWhazzatLLM):
    def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        raise RuntimeError("CUDA exploded at 0xdeadbeef")


async def test_an_unexpected_error_is_a_friendly_message_not_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    chat, services = Chat(), make_services(llm=BrokenLLM(prompts=[]))
    await handlers.handle_message(NEED, services)
    message = chat.emitter.messages()[-1]
    assert message.startswith("Sorry, something went wrong")
    assert "Traceback" not in message and "0xdeadbeef" not in message
    assert "0xdeadbeef" in caplog.text  # the details go to the server log
    failed = chat.emitter.finished_steps()
    assert failed["Rewrite"]["isError"] is True


async def test_a_bad_need_says_what_to_change() -> None:
    chat, services = Chat(), make_services()
    await handlers.handle_message("   ", services)
    assert "the need is empty" in chat.emitter.messages()[-1]
    assert chat.emitter.steps() == []


# --- the model once, the event loop free -----------------------------------------------------------------------
async def test_chats_share_one_chain_per_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.pipeline.chain

    builds: list[Any] = []
    real_build = agent.pipeline.chain.build_chain
    monkeypatch.setattr(agent.pipeline.chain, "build_chain", lambda *a, **k: builds.append(a) or real_build(*a, **k))
    services = make_services()
    for _ in range(2):
        Chat()
        await handlers.handle_message(NEED, services)
    assert len(builds) == 1


async def test_the_event_loop_keeps_running_while_the_model_works() -> None:
    # The model waits until the event loop has answered during its call: only possible when the model
    # runs off the loop. On the loop it would wait in vain (the timeout only stops a hang).
    model_running, loop_answered = threading.Event(), threading.Event()
    waits: list[bool] = []

    class WaitingLLM(FakeWhazzatLLM):
        def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            model_running.set()
            waits.append(loop_answered.wait(timeout=30))
            return super()._call(prompt, *args, **kwargs)

    async def answer_while_the_model_works() -> None:
        while not model_running.is_set():
            await asyncio.sleep(0.005)
        loop_answered.set()

    chat, services = Chat(), make_services(llm=WaitingLLM(prompts=[]))
    answering = asyncio.create_task(answer_while_the_model_works())
    await handlers.handle_message(NEED, services)
    answering.cancel()
    assert waits and waits[0] is True  # the loop answered while the model's first call was running
    assert chat.emitter.finished_steps()["Suggest"]["isError"] is False  # and the answer went on


async def test_the_app_module_wires_every_chainlit_event() -> None:
    from chainlit.config import config

    import agent.ui.app  # noqa: F401 - registers the callbacks

    assert config.code.on_message and config.code.on_chat_start and config.code.on_settings_update
    assert config.code.set_starters and config.code.on_app_startup
    assert {handlers.FEEDBACK_UP, handlers.FEEDBACK_DOWN, handlers.FEEDBACK_COMMENT} <= set(
        config.code.action_callbacks
    )
    assert len(handlers.starters()) == 3


# --- early answers ------------------------------------------------------------------------------------------
class GatedShop(FakeShop):
    """FakeShop whose searches wait until the test opens the gate (a slow or hanging marketplace)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.released: list[bool] = []

    def search(self, query: SearchQuery) -> SearchOutcome:
        self.released.append(self.gate.wait(timeout=30))
        return super().search(query)


async def until(condition: Any, timeout: float = 30) -> None:
    """Let the event loop run until ``condition()`` holds (the timeout only stops a hang)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


def open_steps(emitter: RecordingEmitter) -> list[str]:
    """Names of the steps sent and never ended: a spinner still turning in the browser."""
    ended = {step["id"] for step in emitter.updated if step.get("end")}
    return [step["name"] for step in emitter.sent if step.get("type") == "tool" and step["id"] not in ended]


async def test_product_types_are_shown_before_a_slow_search_returns() -> None:
    shop = GatedShop()
    chat, services = Chat(), make_services(shop)
    answering = asyncio.create_task(handlers.handle_message(NEED, services))
    try:
        await until(lambda: any(m.startswith("Product types:") for m in chat.emitter.messages()))
        assert not shop.gate.is_set() and not shop.released  # the search has not returned
        [early] = [m for m in chat.emitter.messages() if m.startswith("Product types:")]
        assert "garden trowel" in early and "hand rake" in early
        assert {"Rewrite", "Suggest", "Merge"} <= set(chat.emitter.finished_steps())  # filled in as they end
        assert "Search" not in chat.emitter.finished_steps() and "Rank" not in chat.emitter.steps()
        assert get_state() is not None and get_state().current is None  # no answer yet
    finally:
        shop.gate.set()
    await asyncio.wait_for(answering, 30)

    messages = chat.emitter.messages()
    early_at = next(i for i, m in enumerate(messages) if m.startswith("Product types:"))
    assert early_at < len(messages) - 1 and "garden-trowel-1-1" in messages[-1]  # the cards follow it
    assert shop.released and all(shop.released)
    assert open_steps(chat.emitter) == []


async def test_the_similar_needs_step_shows_known_needs_and_their_product_types(
    shop: FakeShop, isolated_home: Path
) -> None:
    from agent.pipeline.memory import MemoryRow, build_memory, remember
    from tests.fakes import WordEmbeddings

    chat = Chat()
    memory = build_memory(isolated_home, splits=(), embeddings=WordEmbeddings())
    remember(isolated_home, [MemoryRow(need="dig food out of my garden", products=["potato fork", "garden spade"])],
             memory)
    services = make_services(shop, memory_mode="fused")
    services._memory = memory
    await handlers.handle_message(NEED, services)

    neighbours = chat.emitter.finished_steps()["Similar needs"]["output"]
    assert "Similar needs I know" in neighbours
    assert "dig food out of my garden" in neighbours and "potato fork, garden spade" in neighbours
    assert chat.emitter.steps().index("Similar needs") < chat.emitter.steps().index("Search")


# --- several chats at once -------------------------------------------------------------------------------------
async def test_concurrent_chats_each_get_only_their_own_answers(shop: FakeShop) -> None:
    needs = {
        NEED: ["garden trowel", "hand rake"],
        "a quiet fan for my desk": ["desk fan", "clip fan"],
        "first camping trip": ["camping tent", "sleeping bag"],
    }
    everyone_asked = threading.Event()

    class WaitingForEveryone(FakeWhazzatLLM):
        """Answers nothing until every chat has asked: the three answers are in the works together."""

        def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            everyone_asked.wait(timeout=30)
            return super()._call(prompt, *args, **kwargs)

    llm = WaitingForEveryone(prompts=[], rewrites={}, products={n: ", ".join(p) for n, p in needs.items()})
    services = make_services(shop, llm=llm)
    chats: dict[str, Chat] = {}
    answering = []
    for need in needs:
        chats[need] = Chat()  # each task copies the context current when it is created: its own session
        answering.append(asyncio.create_task(handlers.handle_message(need, services)))
    try:
        await until(lambda: all(any(m.startswith("Working on") for m in c.emitter.messages())
                                for c in chats.values()))
    finally:
        everyone_asked.set()
    await asyncio.wait_for(asyncio.gather(*answering), 60)

    for need, chat in chats.items():
        chat.use()
        state = get_state()
        assert state is not None and state.current is not None and state.current.need == need
        assert {s.product for s in state.current.suggestions} == set(needs[need])
        assert {listing.product for listing in state.found} == set(needs[need])
        [early] = [m for m in chat.emitter.messages() if m.startswith("Product types:")]
        assert set(early.removeprefix("Product types: ").split(", ")) == set(needs[need])
        shown = "\n".join(chat.emitter.messages() + [str(step.get("output")) for step in chat.emitter.updated])
        others = [p for other, products in needs.items() if other != need for p in products]
        assert not any(product in shown for product in others), need
        assert all(a["payload"] == {"answer_id": state.current.id} for a in chat.emitter.actions)
        assert not any(handlers.STILL_WORKING in m for m in chat.emitter.messages())


# --- a server that survives its users ----------------------------------------------------------------------------
async def test_a_need_over_the_length_limit_is_refused_politely_with_the_limit() -> None:
    from agent.core.config import MAX_NEED_CHARS

    llm = FakeWhazzatLLM(prompts=[])
    chat, services = Chat(), make_services(llm=llm)
    for text in ("dig " * 200, "more " + "x" * 30_000):  # over the limit; far over it, shaped like a follow-up
        await handlers.handle_message(text, services)
        message = chat.emitter.messages()[-1]
        assert message.startswith("I can't use that message: the need is")
        assert f"keep it under {MAX_NEED_CHARS}" in message and "x" * 50 not in message
    assert llm.prompts == [] and chat.emitter.steps() == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_flood_of_messages_is_slowed_down_without_running_the_chain(shop: FakeShop) -> None:
    llm = FakeWhazzatLLM(prompts=[])
    chat, services = Chat(), make_services(shop, llm=llm, ui_messages_per_minute=2)
    await handlers.start_chat(services)
    state = get_state()
    assert state is not None and state.limiter.per_minute == 2
    clock = FakeClock()
    state.limiter.clock = clock

    await handlers.handle_message(NEED, services)
    await handlers.handle_message("under $15", services)
    prompts, searches = len(llm.prompts), len(shop.queries)
    await handlers.handle_message("a desk for a small room", services)
    assert chat.emitter.messages()[-1] == (
        "You are sending messages faster than I can answer them. Please slow down and try again in 30 s."
    )
    assert (len(llm.prompts), len(shop.queries)) == (prompts, searches)  # the chain did not run
    assert state.current is not None and state.current.need == NEED

    clock.now += 30
    await handlers.handle_message("a desk for a small room", services)
    assert state.current.need == "a desk for a small room"


async def test_a_message_while_the_last_need_runs_is_asked_to_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    shop = GatedShop()
    llm = FakeWhazzatLLM(prompts=[])
    chat, services = Chat(), make_services(shop, llm=llm)
    first = asyncio.create_task(handlers.handle_message(NEED, services))
    try:
        await until(lambda: any(m.startswith("Product types:") for m in chat.emitter.messages()))
        prompts = len(llm.prompts)
        await handlers.handle_message("a desk for a small room", services)
        assert chat.emitter.messages()[-1] == handlers.STILL_WORKING
        assert len(llm.prompts) == prompts and not any("small room" in p for p in llm.prompts)
    finally:
        shop.gate.set()
    await asyncio.wait_for(first, 30)
    state = get_state()
    assert state is not None and state.current is not None and state.current.need == NEED and not state.busy

    await handlers.handle_message("a desk for a small room", services)  # once answered, the next one runs
    assert state.current.need == "a desk for a small room"


async def test_a_failed_answer_frees_the_chat_for_the_next_message() -> None:
    chat, services = Chat(), make_services(llm=BrokenLLM(prompts=[]))
    await handlers.handle_message(NEED, services)
    assert chat.emitter.messages()[-1].startswith("Sorry, something went wrong")
    state = get_state()
    assert state is not None and not state.busy
    await handlers.handle_message(NEED, services)
    assert chat.emitter.messages()[-1].startswith("Sorry, something went wrong")  # answered, not "still working"


# --- a search backend that is down ----------------------------------------------------------------------------
def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def axesso_services(url: str) -> Services:
    """The real Axesso backend at ``url``, one attempt per call, short timeouts, no cache."""
    settings = get_settings(backend="axesso", rapidapi_key="test-key", axesso_url=url, http_max_attempts=1,
                            http_connect_timeout=2, http_read_timeout=0.3, http_backoff_initial=0, no_cache=True,
                            paraphrases=3, semantic_dedup=False)
    return Services(settings, llm=FakeWhazzatLLM(prompts=[]), similarity=exact_similarity, relevance=same_relevance)


def assert_search_unavailable_with_product_types(chat: Chat, detail: str) -> None:
    messages = chat.emitter.messages()
    [early] = [m for m in messages if m.startswith("Product types:")]
    assert "garden trowel" in early
    warning = next(m for m in messages if m.startswith("⚠️ **Search unavailable**"))
    assert messages.index(early) < messages.index(warning) < len(messages) - 1  # then the answer
    assert detail in warning.replace("\\", "") and "Try again in a minute" in warning  # (Markdown escapes)
    assert not any(m.startswith("Sorry") for m in messages)
    state = get_state()
    assert state is not None and state.current is not None and not state.busy
    assert {listing.product for listing in state.current.listings} >= {"garden trowel", "hand rake"}
    assert all(listing.url.startswith("https://www.amazon.com/s?k=") for listing in state.current.listings)
    assert open_steps(chat.emitter) == []


@pytest.mark.parametrize("failure", ["refused", "http 503", "timeout"])
async def test_a_down_axesso_backend_gives_a_visible_warning_and_the_product_types(
    failure: str, request: pytest.FixtureRequest
) -> None:
    if failure == "refused":
        url, detail = f"http://127.0.0.1:{closed_port()}", "could not be reached (connection failed"
    else:
        import time

        from werkzeug import Response

        server = request.getfixturevalue("httpserver")
        if failure == "http 503":
            server.expect_request("/amz/amazon-search-by-keyword-asin").respond_with_data("down", status=503)
            detail = "failed (HTTP 503"
        else:
            server.expect_request("/amz/amazon-search-by-keyword-asin").respond_with_handler(
                lambda _: time.sleep(0.6) or Response("{}", status=200)
            )
            detail = "could not be reached (timed out"
        url = server.url_for("").rstrip("/")
    chat, services = Chat(), axesso_services(url)
    await asyncio.wait_for(handlers.handle_message(NEED, services), 60)
    assert_search_unavailable_with_product_types(chat, detail)
    assert "or choose *links*" in chat.emitter.messages()[-2]  # what the user can do about it
    assert detail not in chat.emitter.messages()[-1].replace("\\", "")  # said once, not again in the answer
    search = chat.emitter.finished_steps()["Search"]
    assert search["isError"] is False  # it answered, with links
    assert "🔗 garden trowel: a search link" in search["output"] and "✓" not in search["output"]


class RaisingShop(FakeShop):
    """Breaks the backend contract (never raise): what a buggy or new backend might do."""

    def search(self, query: SearchQuery) -> SearchOutcome:
        raise ConnectionError("http://secret.example/?key=abc refused")


async def test_a_backend_that_raises_still_answers_with_the_product_types(caplog: pytest.LogCaptureFixture) -> None:
    chat, services = Chat(), make_services(RaisingShop())
    await asyncio.wait_for(handlers.handle_message(NEED, services), 60)
    assert_search_unavailable_with_product_types(chat, "the links search failed (ConnectionError).")
    assert "Search unavailable" in chat.emitter.messages()[-1]  # the answer's cards say it too
    search = chat.emitter.finished_steps()["Search"]
    assert search["isError"] is True and "ConnectionError" in search["output"]
    assert "secret.example" not in "\n".join(chat.emitter.messages()) + search["output"]
    assert "secret.example" in caplog.text  # the details go to the server log


async def test_a_search_that_hangs_is_given_up_after_the_timeout() -> None:
    shop = GatedShop()
    chat, services = Chat(), make_services(shop, ui_search_timeout=0.2)
    try:
        await asyncio.wait_for(handlers.handle_message(NEED, services), 30)
        assert not shop.gate.is_set()  # the handler returned while the search still hung
        assert_search_unavailable_with_product_types(chat, "search did not answer within 0.2 s.")
        assert chat.emitter.finished_steps()["Search"]["isError"] is True
    finally:
        shop.gate.set()


async def test_more_with_a_down_backend_says_so_and_keeps_the_page(shop: FakeShop) -> None:
    chat, services = Chat(), make_services(shop)
    await handlers.handle_message(NEED, services)
    broken = RaisingShop()
    services._backends = type(services._backends)()  # the shop goes down after the first answer
    services._backend_factory = lambda settings: broken
    await handlers.handle_message("more garden trowels", services)
    message = chat.emitter.messages()[-1]
    assert "Search unavailable" in message and "search failed (ConnectionError)." in message.replace("\\", "")
    state = get_state()
    assert state is not None and state.pages == {}  # asking again fetches page 2 again
    assert open_steps(chat.emitter) == []


def test_the_first_outage_is_the_trouble_shown() -> None:
    from agent.ui.search_status import search_trouble

    down = "Axesso could not be reached (timed out after 3 attempts) for 'x'; showing Amazon search links instead."
    assert search_trouble([down, "Axesso failed (HTTP 502 after 3 attempts) for 'y'."]) == down
    assert search_trouble([]) is None


# --- pure helpers --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cheaper", Cheaper()),
        ("Something cheaper, please!", Cheaper()),
        ("under $20", Cheaper(budget=20.0)),
        ("below 19,99 €", Cheaper(budget=19.99)),
        ("cheaper, under 1,000 dollars", Cheaper(budget=1000.0)),
        ("max 30", Cheaper(budget=30.0)),
        ("more garden trowels", More(product="garden trowel")),
        ("show me more of the Trowel Garden", More(product="garden trowel")),
        ("more storage for my tiny flat", NewNeed(text="more storage for my tiny flat")),
        ("a budget laptop for school", NewNeed(text="a budget laptop for school")),
        ("under the sink organiser", NewNeed(text="under the sink organiser")),
    ],
)
def test_follow_ups_are_told_from_new_needs(text: str, expected: object) -> None:
    assert parse_followup(text, ["garden trowel", "hand rake"]) == expected


def test_escape_text_neutralises_markdown_and_autolinks() -> None:
    assert escape_text("![x](http://evil) www.evil.com | *b*") == (
        r"\!\[x\]\(http\:\/\/evil\) www\.evil\.com \| \*b\*"
    )
    assert escape_text("a\nb  c") == "a b c"
    assert escape_text("x" * 300, limit=10) == "x" * 9 + "…"


def test_only_http_urls_become_links() -> None:
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("/relative") is None
    assert safe_url("https://www.amazon.com/s?k=a (b)") == "https://www.amazon.com/s?k=a%20%28b%29"


def test_cards_group_by_product_type_and_show_links_for_search_pages() -> None:
    listings = [Listing(product="garden trowel", title="Search Amazon for “garden trowel”",
                        url="https://www.amazon.com/s?k=garden+trowel"),
                Listing(product="hand rake", title="Search Amazon for “hand rake”",
                        url="https://www.amazon.com/s?k=hand+rake")]
    suggestions = [Suggestion(product="garden trowel", votes=3, sources=[NEED, "dig", "soil"]),
                   Suggestion(product="hand rake", votes=1, sources=["dig"])]
    text = render_answer(need=NEED, paraphrases=["dig", "soil"], suggestions=suggestions, listings=listings,
                         domain="com")
    assert "#### Garden trowel · 3 of 3 phrasings" in text and "#### Hand rake · 1 of 3 phrasings" in text
    assert "- [Search Amazon for “garden trowel”](https://www.amazon.com/s?k=garden+trowel)" in text
    assert "| Price |" not in text  # no empty table for search links
    assert "- garden trowel: suggested for your words, rewrite 1, rewrite 2" in text


def test_chat_preferences_validate_the_panel() -> None:
    preferences = ChatPreferences()
    assert preferences.updated({"budget": ""}).budget is None
    assert preferences.updated({"budget": "$25"}).budget == 25.0
    assert preferences.updated({"budget": 0}).budget is None
    with pytest.raises(SettingsError, match="domain"):
        preferences.updated({"domain": "evil.example"})
    settings = preferences.updated({"paraphrases": 1, "domain": "de"}).apply(get_settings())
    assert settings.paraphrases == 1 and settings.domain == "de"


def test_ui_command_runs_chainlit_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import sys
    import types

    from agent.cli import ui as cli

    calls: list[dict[str, Any]] = []
    fake_cli = types.SimpleNamespace(main=lambda **kwargs: calls.append(kwargs))
    # A stand-in for chainlit.cli: the real one patches asyncio (nest_asyncio) for the whole process.
    monkeypatch.setitem(sys.modules, "chainlit.cli", types.SimpleNamespace(cli=fake_cli))
    monkeypatch.setenv("CHAINLIT_APP_ROOT", "elsewhere")
    cli.ui(host="127.0.0.1", port=8123, headless=True)
    assert calls[0]["args"] == ["run", str(cli.APP_PATH), "--host", "127.0.0.1", "--port", "8123", "--headless"]
    assert os.environ["CHAINLIT_APP_ROOT"] == str(cli.APP_ROOT)
    assert (cli.APP_ROOT / "chainlit.md").is_file() and cli.APP_PATH.is_file()


def test_an_install_without_a_checkout_gets_the_ui_files_under_its_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agent.cli import ui as cli

    checkout = cli.APP_ROOT
    assert cli.app_root(tmp_path / "home") == checkout  # a source checkout serves its own files
    monkeypatch.setattr(cli, "APP_ROOT", tmp_path / "site-packages")  # no chainlit.md, no .chainlit
    root = cli.app_root(tmp_path / "home")
    assert root == tmp_path / "home" / "ui"
    assert (root / "chainlit.md").read_bytes() == (checkout / "chainlit.md").read_bytes()
    config = root / ".chainlit" / "config.toml"
    assert config.read_bytes() == (checkout / ".chainlit" / "config.toml").read_bytes()
    config.write_text("# edited by the user\n", encoding="utf-8")
    cli.app_root(tmp_path / "home")
    assert config.read_text(encoding="utf-8") == "# edited by the user\n"  # never overwritten


def test_committed_chainlit_config_keeps_safe_defaults() -> None:
    import tomllib

    from agent.cli import ui as cli

    config = tomllib.loads((cli.APP_ROOT / ".chainlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["features"]["unsafe_allow_html"] is False
    assert config["features"]["spontaneous_file_upload"]["enabled"] is False
    assert "*" not in config["project"]["allow_origins"]
    assert json.dumps(config["project"]["allow_origins"]).count("127.0.0.1") == 1


def test_password_login_is_off_unless_a_password_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.ui import auth

    monkeypatch.delenv(auth.PASSWORD_ENV, raising=False)
    assert not auth.login_enabled()
    assert not auth.credentials_match("whazzat", "")
    monkeypatch.setenv(auth.PASSWORD_ENV, "correct horse")
    assert auth.login_enabled()
    assert auth.credentials_match("whazzat", "correct horse")
    assert not auth.credentials_match("whazzat", "wrong")
    monkeypatch.setenv(auth.USER_ENV, "ana")
    assert auth.credentials_match("ana", "correct horse") and not auth.credentials_match("whazzat", "correct horse")
