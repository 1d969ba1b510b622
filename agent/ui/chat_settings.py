"""The chat settings panel: paraphrases, backend, Amazon domain, budget and top K.

:class:`ChatPreferences` validates what the panel sends (the browser can send anything), and turns it
into the chain's :class:`~agent.core.config.Settings`. The defaults come from the server's settings, so
``WHAZZAT_PARAPHRASES=2 whazzat ui`` starts every chat with two paraphrases.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.core.config import AMAZON_DOMAINS, BACKENDS, MAX_PARAPHRASES, Backend, Domain, Settings
from agent.core.errors import WhazzatError

MAX_TOP_K = 30

BACKEND_LABELS = {
    "links": "links: an Amazon search link per product type (no key needed)",
    "axesso": "axesso: real Amazon listings (needs RAPIDAPI_KEY on the server)",
    "catalog": "catalog: the product feed set by WHAZZAT_CATALOG on the server",
}


class ChatPreferences(BaseModel):
    """One chat's choices; each field is a widget of the settings panel (same id)."""

    model_config = ConfigDict(extra="ignore")

    paraphrases: int = Field(default=4, ge=0, le=MAX_PARAPHRASES, description="Rewrites of the need.")
    backend: Backend = "links"
    domain: Domain = "com"
    budget: float | None = Field(default=None, gt=0, description="Maximum price; None means no limit.")
    top_k: int = Field(default=10, ge=1, le=MAX_TOP_K, description="Listings shown.")

    @field_validator("budget", mode="before")
    @classmethod
    def _empty_budget_is_none(cls, value: Any) -> Any:
        # The number input sends "" or null when cleared, and people type "$25".
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            value = re.sub(r"[^\d.]", "", value.replace(",", ".")) or None
        if value is not None and float(value) == 0:
            return None
        return value

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatPreferences:
        return cls(
            paraphrases=settings.paraphrases,
            backend=settings.backend,
            domain=settings.domain,
            budget=settings.budget,
            top_k=min(settings.top_k, MAX_TOP_K),
        )

    def apply(self, settings: Settings) -> Settings:
        """The server's settings with this chat's choices on top."""
        return Settings.model_validate({**settings.model_dump(), **self.model_dump()})

    def updated(self, values: dict[str, Any]) -> ChatPreferences:
        """A copy with the panel's ``values`` applied; raises :class:`SettingsError` saying what to fix."""
        try:
            return ChatPreferences.model_validate({**self.model_dump(), **values})
        except ValidationError as error:
            first = error.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "a setting"
            raise SettingsError(f"{field.replace('_', ' ')}: {first['msg']}") from error


class SettingsError(WhazzatError, ValueError):
    """A value from the settings panel is out of range; the message names the field."""


def check_backend(preferences: ChatPreferences, settings: Settings) -> str | None:
    """A note when the chosen backend cannot work as asked on this server, else None."""
    if preferences.backend == "catalog" and settings.catalog is None:
        return "The catalog backend needs WHAZZAT_CATALOG set on the server; using links instead."
    if preferences.backend == "axesso" and settings.rapidapi_key is None:
        return "No RAPIDAPI_KEY is set on the server, so Axesso answers with search links."
    return None


def effective(preferences: ChatPreferences, settings: Settings) -> ChatPreferences:
    """The preferences that can run here: an unconfigured catalog falls back to links."""
    if preferences.backend == "catalog" and settings.catalog is None:
        return preferences.model_copy(update={"backend": "links"})
    return preferences


def widgets(preferences: ChatPreferences) -> list[Any]:
    """The Chainlit input widgets of the settings panel, showing ``preferences``."""
    from chainlit.input_widget import NumberInput, Select, Slider

    return [
        Slider(id="paraphrases", label="Paraphrases", initial=preferences.paraphrases, min=0,
               max=MAX_PARAPHRASES, step=1,
               description="Rewrites of your need asked alongside it: more find more product types, but slower."),
        Select(id="backend", label="Where to search", items={BACKEND_LABELS[b]: b for b in BACKENDS},
               initial_value=preferences.backend),
        Select(id="domain", label="Amazon marketplace", items={f"amazon.{d}": d for d in AMAZON_DOMAINS},
               initial_value=preferences.domain),
        NumberInput(id="budget", label="Budget (maximum price)", initial=preferences.budget,
                    placeholder="no limit",
                    description="Listings above it are hidden (needs prices: axesso or catalog)."),
        Slider(id="top_k", label="Listings shown", initial=preferences.top_k, min=1, max=MAX_TOP_K, step=1),
    ]
