"""The Chainlit app: wires Chainlit's events to :mod:`agent.ui.handlers`. Start it with ``whazzat ui``
(which runs ``chainlit run`` on this file).

The model loads once per server process: a background thread starts loading it when the server starts,
and every chat shares it (see :mod:`agent.ui.services`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import chainlit as cl

from agent.ui import auth, handlers
from agent.ui.services import default_services

log = logging.getLogger("agent.ui")


def _warm_up() -> None:
    try:
        default_services().warm_up()
    except Exception:
        log.exception("Loading the model at startup failed")


@cl.on_app_startup
def start_loading_the_model() -> None:
    """Load the model in the background so the server answers HTTP at once."""
    threading.Thread(target=_warm_up, name="whazzat-warm-up", daemon=True).start()


@cl.set_starters
async def set_starters(user: cl.User | None = None, language: str | None = None) -> list[cl.Starter]:
    return handlers.starters()


@cl.on_chat_start
async def on_chat_start() -> None:
    await handlers.start_chat(default_services())


@cl.on_settings_update
async def on_settings_update(values: dict[str, Any]) -> None:
    await handlers.update_settings(values, default_services())


@cl.on_message
async def on_message(message: cl.Message) -> None:
    await handlers.handle_message(message.content, default_services())


@cl.action_callback(handlers.FEEDBACK_UP)
async def on_thumbs_up(action: cl.Action) -> None:
    await handlers.record_verdict(action.payload.get("answer_id"), "up", default_services())


@cl.action_callback(handlers.FEEDBACK_DOWN)
async def on_thumbs_down(action: cl.Action) -> None:
    await handlers.record_verdict(action.payload.get("answer_id"), "down", default_services())


@cl.action_callback(handlers.FEEDBACK_COMMENT)
async def on_comment(action: cl.Action) -> None:
    await handlers.ask_comment(action.payload.get("answer_id"), default_services())


if auth.login_enabled():

    @cl.password_auth_callback
    def password_login(username: str, password: str) -> cl.User | None:
        if auth.credentials_match(username, password):
            return cl.User(identifier=username, metadata={"provider": "password"})
        return None
