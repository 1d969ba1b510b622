"""Show the chain's stages (rewrite, suggest, merge, search, rank) as Chainlit steps while it runs.

The chain is synchronous and slow on a CPU, so it runs in a worker thread and the event loop stays free
(the page never freezes). A LangChain callback handler, :class:`StageProgress`, is called inline in that
thread when each stage starts and ends; it copies what the step will show *at that moment* (the next
stage mutates the chain's state) and hands it to the event loop through a queue, where :class:`StepView`
opens, fills and closes one ``cl.Step`` per stage. What a finished stage found (the product types after
the merge) can be shown at once through ``on_event``, before the slow search returns.

A search that fails (the backend raised) or hangs past ``Settings.ui_search_timeout`` ends the wait with a
:class:`SearchFailed` that carries what the stages before it found, so the chat can still answer; no step
is ever left running.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from agent.core.config import Settings
from agent.core.errors import WhazzatError
from agent.core.schemas import Listing, Neighbour, Recommendation, Suggestion
from agent.pipeline.state import STAGES, ChainState
from agent.ui.cards import escape_text, format_price
from agent.ui.search_status import failed_reason, timeout_reason
from agent.ui.services import Services

log = logging.getLogger(__name__)

#: Chain stage -> step title. "load" is the UI's own wait (the model loading), shown the same way.
STEP_TITLES: dict[str, str] = {
    "load": "Load the model",
    "rewrite": "Rewrite",
    "suggest": "Suggest",
    "retrieve": "Similar needs",
    "fuse": "Merge",
    "search": "Search",
    "rank": "Rank",
}
#: The chain's stages shown as steps (validation is instant and has nothing to show).
SHOWN_STAGES: tuple[str, ...] = tuple(stage for stage in STAGES if stage != "validate")


@dataclass(frozen=True)
class StageEvent:
    """A stage started, ended or failed; ``data`` is a private copy of what its step shows."""

    stage: str
    kind: Literal["start", "end", "error"]
    data: dict[str, Any] = field(default_factory=dict)


def snapshot(stage: str, kind: str, state: Any) -> dict[str, Any]:
    """Copy the parts of the chain's state that the step for ``stage`` shows."""
    if not isinstance(state, ChainState):
        return {}
    if kind == "start":
        if stage == "search":
            return {"products": [s.product for s in state.suggestions]}
        return {}
    keys = {
        "rewrite": ("need", "paraphrases", "warnings"),
        "retrieve": ("neighbours",),
        "suggest": ("proposals",),
        "fuse": ("suggestions", "paraphrases"),
        "search": ("listings", "warnings", "search_outages"),
        "rank": ("listings",),
    }.get(stage, ())
    return {key: copy.deepcopy(getattr(state, key)) for key in keys}


class StageProgress(BaseCallbackHandler):
    """Reports the chain's named stages to ``emit``; called inline in the chain's thread."""

    run_inline = True

    def __init__(self, emit: Callable[[StageEvent], None]) -> None:
        self._emit = emit
        self._stages: dict[UUID, str] = {}

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        name = kwargs.get("name")
        if name in SHOWN_STAGES:
            self._stages[run_id] = name
            self._emit(StageEvent(name, "start", snapshot(name, "start", inputs)))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if (name := self._stages.pop(run_id, None)) is not None:
            self._emit(StageEvent(name, "end", snapshot(name, "end", outputs)))

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if (name := self._stages.pop(run_id, None)) is not None:
            # The error's kind only: its text may hold URLs or API details meant for the server log.
            self._emit(StageEvent(name, "error", {"reason": failed_reason(type(error).__name__)}))


# --- what each step says ---------------------------------------------------------------------------------
def why(suggestion: Suggestion, asked: int) -> str:
    """A short reason for a fused product type: who backs it, in words."""
    reasons = []
    if suggestion.votes:
        reasons.append(f"model {suggestion.votes}/{asked}")
    if suggestion.neighbours:
        first = escape_text(suggestion.neighbours[0], 50)
        more = f" +{len(suggestion.neighbours) - 1}" if len(suggestion.neighbours) > 1 else ""
        reasons.append(f"like *{first}*{more}")
    return "; ".join(reasons) or "relevance"


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def describe(event: StageEvent, settings: Settings) -> str:
    """The Markdown a step shows for ``event`` (model output and API text escaped)."""
    data, stage = event.data, event.stage
    if event.kind == "error":
        if stage == "search":
            return f"The {settings.backend} search {escape_text(data.get('reason') or 'failed', 100)}."
        return "This step failed."
    if event.kind == "start":
        return {
            "load": "Loading the language model (once per server; the first time takes a minute)...",
            "rewrite": f"Asking the model for {settings.paraphrases} other ways to say your need...",
            "retrieve": "Looking up similar needs I already know...",
            "suggest": "Asking the model which product types answer each phrasing...",
            "fuse": "Merging the product types of the model and of similar needs...",
            "search": _describe_search_start(data.get("products", []), settings),
            "rank": "Ranking the listings...",
        }.get(stage, "")
    if stage == "load":
        return "The model is loaded; every chat on this server shares it."
    if stage == "rewrite":
        paraphrases = data.get("paraphrases") or []
        if not paraphrases:
            return "No usable rewrite; I will use your words alone." if settings.paraphrases else "Rewrites are off."
        return "Also asking as:\n" + _bullets([escape_text(p, 120) for p in paraphrases])
    if stage == "retrieve":
        neighbours: list[Neighbour] = data.get("neighbours") or []
        if not neighbours:
            return "No similar need in memory."
        return "Similar needs I know:\n" + _bullets(
            [
                f"*{escape_text(n.need, 80)}* ({n.similarity:.2f}) → "
                + ", ".join(escape_text(p, 60) for p in n.products[:5])
                for n in neighbours
            ]
        )
    if stage == "suggest":
        lines = []
        for text, products in data.get("proposals") or []:
            answer = ", ".join(escape_text(p, 60) for p in products) or "(nothing usable)"
            lines.append(f"*{escape_text(text, 80)}* → {answer}")
        return _bullets(lines)
    if stage == "fuse":
        suggestions: list[Suggestion] = data.get("suggestions") or []
        asked = 1 + len(data.get("paraphrases") or [])
        if not suggestions:
            return "No product type to search for."
        if all(s.score is None for s in suggestions):
            return "Product types, by votes:\n" + _bullets(
                [f"{escape_text(s.product, 60)}: {s.votes}/{asked}" for s in suggestions]
            )
        return "Product types, by fused score (model · similar needs · relevance):\n" + _bullets(
            [f"{escape_text(s.product, 60)}: {s.score:.2f} ({why(s, asked)})" for s in suggestions]
        )
    if stage == "search":
        return _describe_search_end(data, settings)
    if stage == "rank":
        return _describe_rank(data.get("listings") or [], settings)
    return "Done."


def _describe_search_start(products: list[str], settings: Settings) -> str:
    where = f"{settings.backend} on amazon.{settings.domain}"
    return f"Searching {where} for {len(products)} product types:\n" + _bullets(
        [f"⏳ {escape_text(p, 60)}" for p in products]
    )


def _describe_search_end(data: dict[str, Any], settings: Settings) -> str:
    # A listing without an ASIN is a marketplace search link (the links backend, or a fallback when the
    # search found nothing or did not answer): not a result to tick off.
    counts: dict[str, int] = {}
    for listing in data.get("listings") or []:
        counts[listing.product] = counts.get(listing.product, 0) + (listing.asin is not None)
    lines = [
        f"✓ {escape_text(product, 60)}: {n} result{'s' if n != 1 else ''}" if n
        else f"🔗 {escape_text(product, 60)}: a search link"
        for product, n in counts.items()
    ]
    notes = [f"⚠️ {escape_text(w, 200)}" for w in data.get("warnings") or []]
    return f"Searched {settings.backend} on amazon.{settings.domain}:\n" + _bullets(lines + notes)


def _describe_rank(listings: list[Listing], settings: Settings) -> str:
    if not listings:
        return "Nothing to rank (no listing within the budget)."
    lines = []
    for listing in listings:
        parts = ", ".join(f"{name} {value:.2f}" for name, value in listing.score_parts.items())
        price = format_price(listing.price, settings.domain)
        lines.append(f"{escape_text(listing.title, 60)}{' · ' + price if price else ''}: "
                     f"score {listing.score or 0:.2f} ({parts})")
    budget = f" within {format_price(settings.budget, settings.domain)}" if settings.budget else ""
    return f"Top {len(listings)}{budget}, by score:\n" + _bullets(lines)


# --- showing the steps -----------------------------------------------------------------------------------
class StepView:
    """Turns stage events into Chainlit steps: one step per stage, opened on start, closed on end,
    nested under the message ``parent_id`` (the answer in the making) when given."""

    def __init__(self, settings: Settings, parent_id: str | None = None) -> None:
        self.settings = settings
        self.parent_id = parent_id
        self._open: dict[str, Any] = {}
        #: Every listing the search found, before ranking (kept for "cheaper" follow-ups).
        self.found: list[Listing] = []
        #: What the stages before the search found (an answer without listings if the search fails).
        self.need: str | None = None
        self.paraphrases: list[str] = []
        self.neighbours: list[Neighbour] = []
        self.suggestions: list[Suggestion] = []

    def running(self, stage: str) -> bool:
        """Whether ``stage``'s step is open (started, not yet ended)."""
        return stage in self._open

    async def show(self, event: StageEvent) -> None:
        import chainlit as cl
        from chainlit.utils import utc_now

        title = STEP_TITLES.get(event.stage, event.stage)
        if event.kind == "start":
            step = cl.Step(name=title, type="tool", parent_id=self.parent_id,
                           default_open=event.stage in ("search", "load"))
            step.start = utc_now()
            step.output = describe(event, self.settings)
            self._open[event.stage] = step
            await step.send()
            return
        if event.kind == "end":
            self._keep(event)
        step = self._open.pop(event.stage, None)
        if step is None:
            return
        step.output = describe(event, self.settings)
        step.is_error = event.kind == "error"
        step.end = utc_now()
        await step.update()

    def _keep(self, event: StageEvent) -> None:
        data = event.data
        if event.stage == "rewrite":
            self.need = data.get("need") or self.need
            self.paraphrases = list(data.get("paraphrases") or [])
        elif event.stage == "retrieve":
            self.neighbours = list(data.get("neighbours") or [])
        elif event.stage == "fuse":
            self.suggestions = list(data.get("suggestions") or [])
        elif event.stage == "search":
            self.found = list(data.get("listings") or [])

    async def close_all(self, reason: str | None = None) -> None:
        """Mark steps still open (the chain failed or timed out in between) as failed."""
        for stage in list(self._open):
            await self.show(StageEvent(stage, "error", {"reason": reason} if reason else {}))

    def partial(self, need: str) -> Recommendation:
        """What was found before the search: the product types, no listings."""
        return Recommendation(need=self.need or need, paraphrases=self.paraphrases,
                              neighbours=self.neighbours, suggestions=self.suggestions)


class SearchFailed(WhazzatError):
    """The search stage raised or did not answer in time. ``partial`` holds what the stages before it
    found (the product types), so the chat can still answer with them."""

    def __init__(self, reason: str, partial: Recommendation) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial


#: Called on the event loop after each event's step is shown (e.g. to post the product types early).
EventHook = Callable[[StageEvent, StepView], Awaitable[None]]


async def run_chain_with_steps(
    services: Services,
    settings: Settings,
    need: str,
    parent_id: str | None = None,
    *,
    on_event: EventHook | None = None,
) -> tuple[Recommendation, StepView]:
    """Answer ``need`` in a worker thread, showing each stage as a step (under ``parent_id``) as it happens.

    Raises :class:`SearchFailed` when the search raises or takes longer than ``settings.ui_search_timeout``
    (the worker thread cannot be stopped: it finishes on its own and its answer is dropped), and whatever
    else the chain raised."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[StageEvent | None] = asyncio.Queue()

    def emit(event: StageEvent | None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    def work() -> Recommendation:
        try:
            if not services.has_chain(settings):
                emit(StageEvent("load", "start"))
                services.chain(settings)
                emit(StageEvent("load", "end"))
            # Chats run side by side; their model calls meet in the services' generation worker.
            return services.chain(settings).invoke(need, {"callbacks": [StageProgress(emit)]})
        finally:
            emit(None)  # no more events

    view = StepView(settings, parent_id)
    task = asyncio.create_task(asyncio.to_thread(work))
    # Read the outcome even when we stop waiting for it, so a late failure is not reported as unhandled.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    reason: str | None = None
    try:
        while True:
            timeout = settings.ui_search_timeout if view.running("search") else None
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                reason = timeout_reason(settings.ui_search_timeout)
                log.warning("The %s search took longer than %s s; answering without it.", settings.backend,
                            settings.ui_search_timeout)
                raise SearchFailed(reason, view.partial(need)) from None
            if event is None:
                break
            if event.stage == "search" and event.kind == "error":
                reason = event.data.get("reason") or failed_reason("error")
            await view.show(event)
            if on_event is not None:
                await on_event(event, view)
        try:
            return await task, view
        except Exception as error:
            if reason is None:
                raise
            log.error("The %s search failed", settings.backend, exc_info=error)
            raise SearchFailed(reason, view.partial(need)) from error
    finally:
        await view.close_all(reason)

