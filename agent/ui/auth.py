"""Optional password login for the chat UI.

Off by default. It is on when ``WHAZZAT_UI_PASSWORD`` is set (``WHAZZAT_UI_USER`` names the user,
"whazzat" by default); Chainlit then also requires ``CHAINLIT_AUTH_SECRET`` (``chainlit create-secret``
makes one) to sign sessions, and refuses to start without it, so a password is never silently ignored.
"""

from __future__ import annotations

import hmac
import os

PASSWORD_ENV = "WHAZZAT_UI_PASSWORD"
USER_ENV = "WHAZZAT_UI_USER"
DEFAULT_USER = "whazzat"


def login_enabled() -> bool:
    """Whether a password is configured."""
    return bool(os.environ.get(PASSWORD_ENV))


def credentials_match(username: str, password: str) -> bool:
    """Whether ``username``/``password`` are the configured ones (constant-time comparisons)."""
    expected_password = os.environ.get(PASSWORD_ENV, "")
    expected_user = os.environ.get(USER_ENV) or DEFAULT_USER
    user_ok = hmac.compare_digest(username.encode(), expected_user.encode())
    password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
    return bool(expected_password) and user_ok and password_ok
