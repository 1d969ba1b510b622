"""What the chat does: start a chat, apply settings, answer a need or a follow-up, record feedback.

These are plain async functions that take their :class:`~agent.ui.services.Services`, so tests call them
directly with a fake model inside a Chainlit context (``agent/ui/app.py`` only wires them to Chainlit's
decorators). Every user-facing failure becomes a friendly message; details go to the server log only.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import chainlit as cl

from agent.core.config import MAX_NEED_CHARS, Settings
from agent.core.errors import InputError, ModelLoadError, WhazzatError
from agent.core.schemas import Listing, Recommendation
from agent.pipeline.feedback import (
    MAX_TRAINING_PRODUCTS,
    FeedbackRecord,
    Verdict,
    append_feedback,
    feedback_path,
)
from agent.pipeline.validation import validate_need
from agent.ui.card_element import AnswerContent, cards_props
from agent.ui.cards import escape_text, format_price, link, render_answer
from agent.ui.chat_settings import SettingsError, check_backend, effective, widgets
from agent.ui.followups import Cheaper, More, NewNeed, parse_followup
from agent.ui.rate_limit import wait_words
from agent.ui.search_status import (
    SEARCH_UNAVAILABLE,
    failed_detail,
    failed_reason,
    product_types_line,
    search_links,
    search_trouble,
    timeout_reason,
    unavailable_note,
)
from agent.ui.services import Services
from agent.ui.session_state import ChatState, ShownAnswer, get_state, set_state
from agent.ui.stage_steps import (
    STEP_TITLES,
    EventHook,
    SearchFailed,
    StageEvent,
    StepView,
    run_chain_with_steps,
)

if TYPE_CHECKING:
    from tools.base import SearchBackend, SearchOutcome, SearchQuery

log = logging.getLogger(__name__)

FEEDBACK_UP = "whazzat_feedback_up"
FEEDBACK_DOWN = "whazzat_feedback_down"
FEEDBACK_COMMENT = "whazzat_feedback_comment"
#: Axesso serves up to 5 result pages per keyword (``SearchQuery.page``).
MAX_PAGE = 5
COMMENT_TIMEOUT_S = 300

EXAMPLE_NEEDS = (
    ("Dig up vegetables", "something to dig food"),
    ("Back pain at the desk", "my back hurts after sitting all day"),
    ("First camping trip", "first camping trip next month, I own nothing"),
)


def friendly(error: BaseException) -> str:
    """What to tell the user about ``error``: our own errors say what to change; anything else is a bug,
    logged with its traceback on the server and summarised politely here."""
    if isinstance(error, InputError):
        return f"I can't use that message: {error}."
    if isinstance(error, ModelLoadError):
        return f"The language model could not be loaded: {error}. Ask whoever runs this server to check it."
    if isinstance(error, (WhazzatError, SettingsError)):
        return str(error)
    log.error("Answering failed", exc_info=error)
    return ("Sorry, something went wrong while answering. Please try again in a moment, or rephrase the need; "
            "the details are in the server log.")


async def say(content: str, **kwargs: Any) -> cl.Message:
    return await cl.Message(content=content, **kwargs).send()


def chat_state(services: Services) -> ChatState:
    """This chat's state, created with the server's defaults if the chat has none yet."""
    return get_state() or set_state(ChatState.for_settings(services.settings))


# --- chat life cycle -----------------------------------------------------------------------------------
def starters() -> list[cl.Starter]:
    """Three example needs, offered as buttons on an empty chat, each with its icon from ``public/starters/``
    (the two lines above them, from ``.chainlit/config.toml``, say what Whazzat does and never does)."""
    icons = ("dig", "back", "camping")
    return [cl.Starter(label=label, message=need, icon=f"/public/starters/{icons[i]}.svg" if i < len(icons) else None)
            for i, (label, need) in enumerate(EXAMPLE_NEEDS)]


async def start_chat(services: Services) -> ChatState:
    """A fresh state with the server's defaults, and the settings panel showing them."""
    state = set_state(ChatState.for_settings(services.settings))
    await cl.ChatSettings(widgets(state.preferences)).send()
    return state


async def update_settings(values: dict[str, Any], services: Services) -> None:
    """Apply the settings panel's values to this chat (an invalid value is refused and explained)."""
    state = chat_state(services)
    try:
        state.preferences = state.preferences.updated(values)
    except SettingsError as error:
        await say(f"That setting was not applied: {escape_text(str(error), 200)}.")
        return
    if note := check_backend(state.preferences, services.settings):
        await say(escape_text(note, 300))


# --- messages ------------------------------------------------------------------------------------------
STILL_WORKING = ("I'm still working on your last need; send this again once its answer is here "
                 "(one message at a time keeps the answers in order).")


def slow_down(wait: float) -> str:
    return (f"You are sending messages faster than I can answer them. Please slow down and try again in "
            f"{wait_words(wait)}.")


async def handle_message(text: str, services: Services) -> None:
    """Answer a message, one at a time per chat and within the chat's rate limit (a message refused for
    either gets a polite reply and runs nothing)."""
    state = chat_state(services)
    # No await between the checks and `busy = True`: two messages of one chat cannot both pass.
    if (wait := state.limiter.take()) > 0:
        await say(slow_down(wait))
        return
    if state.busy:
        await say(STILL_WORKING)
        return
    state.busy = True
    try:
        await _answer_message(state, text, services)
    finally:
        state.busy = False


async def _answer_message(state: ChatState, text: str, services: Services) -> None:
    """A follow-up on the current results, or a new need."""
    products = [s.product for s in state.current.suggestions] if state.current else []
    # Follow-ups are a few words: a long text is a need (validate_need says if it is too long).
    intent = parse_followup(text, products) if len(text) <= MAX_NEED_CHARS else NewNeed(text=text)
    try:
        if isinstance(intent, NewNeed):
            await answer_need(state, intent.text, services)
        elif state.current is None:
            await say("Tell me what you need first (for example *something to dig food*); "
                      "then I can make it cheaper or show more.")
        elif isinstance(intent, Cheaper):
            await answer_cheaper(state, intent, services)
        elif isinstance(intent, More):
            await answer_more(state, intent, services)
    except Exception as error:  # noqa: BLE001 - the user gets a message, the log gets the details
        await say(friendly(error))


def _settings_for(state: ChatState, services: Services) -> Settings:
    return effective(state.preferences, services.settings).apply(services.settings)


@asynccontextmanager
async def working(text: str) -> AsyncIterator[cl.Message]:
    """A message saying what is being done, with the steps shown under it while the code inside works.
    If that code fails, the message becomes a friendly error instead (and the error is handled)."""
    message = await say(text)
    try:
        yield message
    except Exception as error:  # noqa: BLE001 - the user gets a message, the log gets the details
        message.content = friendly(error)
        await message.update()


async def show_answer(
    working_message: cl.Message, done: str, answer: ShownAnswer, content: AnswerContent | str
) -> None:
    """Mark the work as done (``done`` heads the steps) and send the answer after the steps: its Markdown
    (what the copy button copies), its product cards and its feedback buttons."""
    working_message.content = done
    await working_message.update()
    if isinstance(content, str):
        content = AnswerContent(markdown=content)
    await say(content.markdown, actions=feedback_actions(answer.id), elements=content.elements())


async def answer_need(state: ChatState, text: str, services: Services) -> None:
    """Run the whole chain on a new need, each stage a step as it runs, then the cards."""
    need = validate_need(text)  # fail fast, before anything is shown
    settings = _settings_for(state, services)
    loop_seconds = asyncio.get_running_loop().time
    started = loop_seconds()
    async with working(f"Working on “{escape_text(need, 120)}”...") as message:
        try:
            result, view = await run_chain_with_steps(services, settings, need, parent_id=message.id,
                                                      on_event=_early_answers(settings))
            found = view.found or result.listings
        except SearchFailed as failure:
            # The product types are already shown; answer with a search link for each.
            detail = failed_detail(failure.reason, settings)
            await say(unavailable_note(detail, settings))
            result = failure.partial.model_copy(update={
                "listings": search_links(failure.partial.suggestions, settings),
                "warnings": [f"{SEARCH_UNAVAILABLE}: {detail} Showing Amazon search links instead."],
                "timings": {"total": loop_seconds() - started},
            })
            found = result.listings
        answer = _shown(result, settings, result.listings)
        state.start_need(answer, found, settings.budget)
        seconds = result.timings.get("total", 0.0)
        # The first outage was said already, as soon as the search ended (_early_answers).
        said = search_trouble(result.search_outages)
        warnings = [warning for warning in result.warnings if warning != said]
        await show_answer(message, f"Worked on “{escape_text(need, 120)}” for {seconds:.0f} s:", answer,
                          _answer_markdown(answer, warnings=warnings))


def _early_answers(settings: Settings) -> EventHook:
    """What is said before the cards, as soon as it is known: the product types when the merge ends
    (the search may take seconds more), and a warning when the search backend did not answer."""

    async def on_event(event: StageEvent, view: StepView) -> None:
        if event.kind != "end":
            return
        if event.stage == "fuse" and view.suggestions:
            await say(product_types_line(view.suggestions))
        elif event.stage == "search" and (trouble := search_trouble(event.data.get("search_outages") or [])):
            await say(unavailable_note(trouble, settings))

    return on_event


async def answer_cheaper(state: ChatState, intent: Cheaper, services: Services) -> None:
    """Re-rank the current need's listings under a budget: the one given, or the median price shown."""
    current = state.current
    assert current is not None
    if not any(listing.price is not None for listing in state.found):
        await say(NO_PRICES_NOTE)
        return
    shown = [listing.price for listing in current.listings if listing.price is not None]
    prices = shown or [listing.price for listing in state.found if listing.price is not None]
    budget = intent.budget if intent.budget is not None else statistics.median(prices)
    settings = _settings_for(state, services)
    shown_budget = format_price(budget, settings.domain)
    async with working(f"Re-ranking with a budget of {shown_budget}...") as message:
        async with cl.Step(name=STEP_TITLES["rank"], type="tool", parent_id=message.id) as step:
            ranked = await asyncio.to_thread(
                services.rank, state.found, current.suggestions, settings=settings, budget=budget
            )
            step.output = f"Re-ranked {len(state.found)} listings with a budget of {shown_budget}: {len(ranked)} left."
        state.budget = budget
        answer = state.remember(_shown_followup(current, ranked, settings, budget))
        state.current = answer
        await show_answer(message, f"Re-ranked with a budget of {shown_budget}:", answer,
                          _answer_markdown(answer, title=f"**At or under {shown_budget}:**"))


NO_PRICES_NOTE = (
    "These results are search links without prices, so I can't filter them by price: open a link and sort by "
    "price there, or pick the *axesso* or *catalog* backend in the settings for real prices."
)


async def answer_more(state: ChatState, intent: More, services: Services) -> None:
    """Fetch the next result page for one product type and show its new listings."""
    current = state.current
    assert current is not None
    from agent.pipeline.dedup import normalize_product
    from tools.base import SearchQuery

    settings = _settings_for(state, services)
    product = escape_text(intent.product, 60)
    key = normalize_product(intent.product)
    page = state.pages.get(key, 1) + 1
    if page > MAX_PAGE:
        await say(f"I have already shown {MAX_PAGE} pages of {product}.")
        return
    async with working(f"Looking for more {product}...") as message:
        backend = services.backend(settings)
        query = SearchQuery(keyword=intent.product, domain=settings.domain, page=page)
        async with cl.Step(name=STEP_TITLES["search"], type="tool", parent_id=message.id) as step:
            outcome, trouble = await _search_page(backend, query, settings)
            if trouble:
                step.output, step.is_error = f"⚠️ {escape_text(trouble, 300)}", True
            known = {listing.url for listing in state.found}
            new = [listing for listing in outcome.listings if listing.url not in known]
            if not trouble:
                step.output = f"Page {page} of {product}: {len(new)} new listings."
        if trouble:  # the page was not fetched: asking again tries the same page
            message.content = unavailable_note(trouble, settings, links=False)
            await message.update()
            return
        state.pages[key] = page
        if not new:
            first = next((x for x in current.listings if normalize_product(x.product) == key), None)
            where = f": {link(escape_text(first.title), first.url)}" if first else "."
            message.content = (f"No more listings of {product} from this backend; the marketplace page has "
                               f"the rest{where}")
            await message.update()
            return
        state.found.extend(new)
        async with cl.Step(name=STEP_TITLES["rank"], type="tool", parent_id=message.id) as step:
            ranked = await asyncio.to_thread(
                services.rank, new, current.suggestions, settings=settings, budget=state.budget
            )
            step.output = f"Ranked {len(new)} new listings: {len(ranked)} shown."
        answer = state.remember(_shown_followup(current, ranked, settings, state.budget))
        content = _answer_markdown(answer, title=f"**More {product}:**", warnings=outcome.warnings)
        await show_answer(message, f"Fetched page {page} of {product}:", answer, content)


async def _search_page(
    backend: SearchBackend, query: SearchQuery, settings: Settings
) -> tuple[SearchOutcome, str | None]:
    """One search off the event loop, and why it did not answer (None when it did)."""
    from tools.base import SearchOutcome

    try:
        outcome = await asyncio.wait_for(asyncio.to_thread(backend.search, query), settings.ui_search_timeout)
    except TimeoutError:
        return SearchOutcome(), failed_detail(timeout_reason(settings.ui_search_timeout), settings)
    except Exception as error:  # a backend must not raise; if one does anyway, the user is told
        log.error("The %s search failed", settings.backend, exc_info=error)
        return SearchOutcome(), failed_detail(failed_reason(type(error).__name__), settings)
    return outcome, search_trouble(outcome.outages)


def _shown(result: Recommendation, settings: Settings, listings: list[Listing]) -> ShownAnswer:
    return ShownAnswer(
        need=result.need,
        paraphrases=result.paraphrases,
        suggestions=result.suggestions,
        listings=listings,
        domain=settings.domain,
        settings=_settings_summary(settings),
    )


def _shown_followup(current: ShownAnswer, listings: list[Listing], settings: Settings,
                    budget: float | None) -> ShownAnswer:
    return current.model_copy(update={
        "id": uuid.uuid4().hex,
        "listings": listings,
        "settings": {**_settings_summary(settings), "budget": budget},
        "verdict": None,
    })


def _settings_summary(settings: Settings) -> dict[str, Any]:
    return {"model": settings.model, "paraphrases": settings.paraphrases, "backend": settings.backend,
            "domain": settings.domain, "budget": settings.budget, "top_k": settings.top_k}


def _answer_markdown(
    answer: ShownAnswer, *, title: str | None = None, warnings: list[str] | None = None
) -> AnswerContent:
    """The answer's Markdown and, for the same listings and warnings, its product cards."""
    fields = {"need": answer.need, "paraphrases": answer.paraphrases, "suggestions": answer.suggestions,
              "listings": answer.listings, "domain": answer.domain, "warnings": warnings or []}
    return AnswerContent(markdown=render_answer(**fields, title=title), cards=cards_props(**fields))


# --- feedback ------------------------------------------------------------------------------------------
def feedback_actions(answer_id: str) -> list[cl.Action]:
    """Thumbs up, thumbs down and comment buttons for one answer (the payload names the answer only;
    what is recorded comes from the server-side session, never from the browser)."""
    payload = {"answer_id": answer_id}
    return [
        cl.Action(name=FEEDBACK_UP, payload=payload, icon="thumbs-up", tooltip="Helpful"),
        cl.Action(name=FEEDBACK_DOWN, payload=payload, icon="thumbs-down", tooltip="Not helpful"),
        cl.Action(name=FEEDBACK_COMMENT, payload=payload, icon="message-square", label="Comment",
                  tooltip="Tell us what was good or missing"),
    ]


def _find_answer(answer_id: Any, services: Services) -> ShownAnswer | None:
    return chat_state(services).answers.get(str(answer_id))


def _record(answer: ShownAnswer, services: Services, *, verdict: Verdict | None, comment: str | None) -> None:
    record = FeedbackRecord(
        answer_id=answer.id,
        need=answer.need,
        paraphrases=answer.paraphrases,
        products=[s.product for s in answer.suggestions],
        urls=[listing.url for listing in answer.listings],
        verdict=verdict,
        comment=comment,
        settings=answer.settings,
    )
    append_feedback(record, feedback_path(services.settings.home_dir))
    if verdict == "up":
        _remember(answer, services)


def _remember(answer: ShownAnswer, services: Services) -> None:
    """A liked answer becomes a known need at once: the next chat that asks something close sees it."""
    from agent.pipeline.memory import MemoryRow, remember

    products = [s.product for s in answer.suggestions][:MAX_TRAINING_PRODUCTS]
    if not products:
        return
    row = MemoryRow(need=answer.need, products=products, source="feedback")
    remember(services.settings.home_dir, [row], services.memory(services.settings))


async def record_verdict(answer_id: Any, verdict: Verdict, services: Services) -> bool:
    """Append a thumbs up/down for one answer of this chat to the feedback file."""
    answer = _find_answer(answer_id, services)
    if answer is None:
        await say("That answer is no longer in this chat, so I could not record your vote.")
        return False
    try:
        await asyncio.to_thread(_record, answer, services, verdict=verdict, comment=None)
    except OSError as error:
        log.error("Could not write feedback", exc_info=error)
        await say("Sorry, I could not save your feedback on this server.")
        return False
    answer.verdict = verdict
    await cl.context.emitter.send_toast("Thanks for the feedback!", "success")
    return True


async def ask_comment(answer_id: Any, services: Services) -> bool:
    """Ask for a comment on one answer and append it (with the answer's latest vote) to the feedback file."""
    answer = _find_answer(answer_id, services)
    if answer is None:
        await say("That answer is no longer in this chat, so I could not record a comment.")
        return False
    reply = await cl.AskUserMessage(
        content="What was good or missing in this answer? Your comment is saved on this server only.",
        timeout=COMMENT_TIMEOUT_S,
    ).send()
    comment = str((reply or {}).get("output") or "").strip()
    if not comment:
        return False
    try:
        await asyncio.to_thread(_record, answer, services, verdict=answer.verdict, comment=comment[:2000])
    except OSError as error:
        log.error("Could not write feedback", exc_info=error)
        await say("Sorry, I could not save your comment on this server.")
        return False
    await say("Thanks, your comment is saved.")
    return True
