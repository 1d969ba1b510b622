"""What one chat remembers between messages: its settings, the current need's results, and the answers
shown so far (for feedback). It lives in Chainlit's per-session store, so two users never see each
other's results, and it is gone when the session ends. It also holds the chat's guards: whether an answer
is being worked on, and its message rate limit.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.core.config import Settings
from agent.core.schemas import Listing, Suggestion
from agent.pipeline.feedback import Verdict
from agent.ui.chat_settings import ChatPreferences
from agent.ui.rate_limit import MessageLimiter

STATE_KEY = "whazzat_state"
#: Answers kept for feedback per chat; older ones can no longer be rated.
MAX_ANSWERS = 50


class ShownAnswer(BaseModel):
    """An answer as the user saw it: what feedback refers to."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    need: str
    paraphrases: list[str] = Field(default_factory=list)
    suggestions: list[Suggestion] = Field(default_factory=list)
    listings: list[Listing] = Field(default_factory=list)
    domain: str = "com"
    settings: dict[str, Any] = Field(default_factory=dict, description="backend, domain, budget... used.")
    verdict: Verdict | None = None


class ChatState(BaseModel):
    """One chat's memory."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    preferences: ChatPreferences = Field(default_factory=ChatPreferences)
    current: ShownAnswer | None = Field(default=None, description="The last answer follow-ups refer to.")
    found: list[Listing] = Field(default_factory=list, description="Every listing found for the current need.")
    pages: dict[str, int] = Field(default_factory=dict, description="Product type -> last page fetched.")
    budget: float | None = Field(default=None, description="The budget of the current results.")
    answers: dict[str, ShownAnswer] = Field(default_factory=dict)
    busy: bool = Field(default=False, description="A message of this chat is being answered.")
    limiter: MessageLimiter = Field(
        default_factory=lambda: MessageLimiter(0), exclude=True,
        description="This chat's message rate limit (none unless built by for_settings).",
    )

    @classmethod
    def for_settings(cls, settings: Settings) -> ChatState:
        """A fresh chat with the server's defaults and its message rate limit."""
        return cls(preferences=ChatPreferences.from_settings(settings),
                   limiter=MessageLimiter(settings.ui_messages_per_minute))

    def remember(self, answer: ShownAnswer) -> ShownAnswer:
        """Keep ``answer`` for feedback (the oldest is forgotten past :data:`MAX_ANSWERS`)."""
        self.answers[answer.id] = answer
        while len(self.answers) > MAX_ANSWERS:
            self.answers.pop(next(iter(self.answers)))
        return answer

    def start_need(self, answer: ShownAnswer, found: list[Listing], budget: float | None) -> None:
        """A new need replaces the current results; follow-ups now refer to it."""
        self.current = self.remember(answer)
        self.found = list(found)
        self.pages = {}
        self.budget = budget


def get_state() -> ChatState | None:
    """This chat's state, or None before the chat started."""
    import chainlit as cl

    return cl.user_session.get(STATE_KEY)


def set_state(state: ChatState) -> ChatState:
    import chainlit as cl

    cl.user_session.set(STATE_KEY, state)
    return state
