"""HTTP with timeouts and polite retries: the one policy of every remote call (search backends, the
model server), and the GET with retries the search backends and the model server's discovery use.

Retried: connection errors, timeouts, 408, 429 and 5xx, with exponential backoff plus random jitter (so
concurrent workers do not retry in lockstep), or after the server's ``Retry-After`` when it sends one. A
``Retry-After`` longer than the cap ends the retries at once: retrying sooner than the server allows only
burns calls. Never retried: other 4xx (400, 401, 403, 404 ...), whose answer will not change.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from agent.core.config import Settings
from agent.core.errors import WhazzatError

logger = logging.getLogger(__name__)

#: Statuses worth another try (besides every 5xx).
RETRY_STATUSES: frozenset[int] = frozenset({408, 429})
_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def _default(field: str) -> Any:
    """The default of ``Settings.http_<field>``: the defaults (and their meaning) live there only."""
    return Settings.model_fields[f"http_{field}"].default


class HttpPolicy(BaseModel):
    """Timeouts and retry pacing for one remote service; each field is ``Settings.http_<field>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout: float = Field(default=_default("connect_timeout"), gt=0)
    read_timeout: float = Field(default=_default("read_timeout"), gt=0)
    max_attempts: int = Field(default=_default("max_attempts"), ge=1, description="The first try included.")
    backoff_initial: float = Field(default=_default("backoff_initial"), ge=0)
    backoff_max: float = Field(default=_default("backoff_max"), ge=0)
    retry_after_cap: float = Field(default=_default("retry_after_cap"), ge=0)

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpPolicy:
        return cls(**{field: getattr(settings, f"http_{field}") for field in cls.model_fields})

    @property
    def max_retries(self) -> int:
        """Tries after the first, as clients that count retries (openai) want it."""
        return self.max_attempts - 1


@dataclass
class HttpResult:
    """The final response (possibly an error status) and how many requests it took."""

    response: requests.Response
    attempts: int


class TransportError(WhazzatError):
    """No response at all after every attempt (connection refused, timeouts ...)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class _RetryableStatus(Exception):
    """Internal: a response whose status deserves another try."""

    def __init__(self, response: requests.Response, retry_after: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after


def is_retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


def default_is_retryable(response: requests.Response) -> bool:
    return is_retryable_status(response.status_code)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def make_session(pool_size: int = 4) -> requests.Session:
    """A session whose connection pool fits ``pool_size`` concurrent workers; retries are ours, not urllib3's."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def get_with_retries(
    session: requests.Session,
    url: str,
    *,
    policy: HttpPolicy,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    is_retryable: Callable[[requests.Response], bool] = default_is_retryable,
    on_response: Callable[[requests.Response], None] | None = None,
) -> HttpResult:
    """GET ``url``, retrying as the module docstring says.

    Returns the last response whatever its status (the caller decides what a 404 means); raises
    :class:`TransportError` when no response came. ``on_response`` sees every response, retried or not
    (e.g. to read rate-limit headers).
    """
    attempts = 0

    def attempt() -> requests.Response:
        nonlocal attempts
        attempts += 1
        response = session.get(
            url, params=params, headers=headers, timeout=(policy.connect_timeout, policy.read_timeout)
        )
        if on_response is not None:
            on_response(response)
        if is_retryable(response):
            raise _RetryableStatus(response, parse_retry_after(response.headers.get("Retry-After")))
        return response

    retrying = Retrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=_wait(policy),
        retry=retry_if_exception(lambda error: _should_retry(error, policy)),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        return HttpResult(retrying(attempt), attempts)
    except _RetryableStatus as error:
        return HttpResult(error.response, attempts)
    except _TRANSPORT_ERRORS as error:
        raise TransportError(_describe(error), attempts) from None


def _should_retry(error: BaseException, policy: HttpPolicy) -> bool:
    if isinstance(error, _RetryableStatus):
        return error.retry_after is None or error.retry_after <= policy.retry_after_cap
    return isinstance(error, _TRANSPORT_ERRORS)


def _wait(policy: HttpPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential_jitter(
        initial=policy.backoff_initial, max=policy.backoff_max, jitter=policy.backoff_initial
    )

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RetryableStatus) and error.retry_after is not None:
            return error.retry_after  # already known to be <= the cap, see _should_retry
        return backoff(state)

    return wait


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    delay = state.next_action.sleep if state.next_action else 0.0
    logger.info("Request failed (%s); retry %d in %.2f s.", _describe(error), state.attempt_number, delay)


def _describe(error: BaseException | None) -> str:
    """A short reason without URLs or headers (they may carry query text or credentials)."""
    if isinstance(error, _RetryableStatus):
        return str(error)
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    return type(error).__name__ if error else "unknown error"
