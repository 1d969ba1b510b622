"""The Axesso search endpoint on RapidAPI: one call, its errors, and RapidAPI's call budget.

The key travels only in the ``X-RapidAPI-Key`` header, is held as a ``SecretStr`` and is scrubbed from
every message this module builds, so it cannot reach logs, warnings or exceptions. The free plan has 50
calls a month: the client reads ``x-ratelimit-requests-remaining`` from each response and refuses to call
once fewer than ``ratelimit_floor`` remain.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar

import requests
from pydantic import SecretStr

from agent.core.errors import WhazzatError
from agent.core.http import HttpPolicy, TransportError, default_is_retryable, get_with_retries, make_session
from tools.base import SearchQuery

logger = logging.getLogger(__name__)

SEARCH_PATH = "/amz/amazon-search-by-keyword-asin"
#: RapidAPI routes by this header, so it stays the same when the base URL points at a proxy.
RAPIDAPI_HOST = "axesso-axesso-amazon-data-service-v1.p.rapidapi.com"
REMAINING_HEADER = "x-ratelimit-requests-remaining"
RESET_HEADER = "x-ratelimit-requests-reset"


class AxessoError(WhazzatError):
    """A search that produced no usable response. ``reason`` is safe to show; ``calls`` were spent."""

    #: True when the cause is not the query but the account (key, budget): every search would fail alike.
    everywhere: ClassVar[bool] = False

    def __init__(self, reason: str, calls: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.calls = calls


class AxessoUnavailable(AxessoError):
    """Network failure, timeouts, 5xx or 429 after every retry, or a body that is not JSON."""


class AxessoRejected(AxessoError):
    """A 4xx that retrying will not fix: a bad key (401/403) or a bad request (400)."""


class AxessoKeyRejected(AxessoRejected):
    """401/403: the key is wrong or not subscribed."""

    everywhere = True


class AxessoNotFound(AxessoError):
    """Axesso's 404: no product matches the keyword."""


class AxessoBudgetExhausted(AxessoError):
    """No call made: RapidAPI's remaining calls fell under the floor, or the key was refused before."""

    everywhere = True


class AxessoClient:
    """Calls the search endpoint; thread-safe, one shared HTTP session."""

    def __init__(
        self,
        *,
        api_key: SecretStr,
        base_url: str,
        policy: HttpPolicy,
        ratelimit_floor: int,
        pool_size: int,
        session: requests.Session | None = None,
    ) -> None:
        self._api_key = api_key
        self._url = base_url.rstrip("/") + SEARCH_PATH
        self._policy = policy
        self._floor = ratelimit_floor
        self._session = session or make_session(pool_size)
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._reset_seconds: float | None = None
        self._heard = False  # whether a response of this run reported the budget
        self._blocked: str | None = None  # why we stopped calling, once we did

    def __repr__(self) -> str:
        return f"AxessoClient(url={self._url!r}, floor={self._floor}, remaining={self._remaining})"

    # --- call budget ---------------------------------------------------------------------------------
    @property
    def reported_budget(self) -> tuple[int, float | None] | None:
        """(calls left, seconds until reset) as a response of *this* run reported them, else None.

        A budget restored from an earlier run is not reported again, so remembering it does not extend it.
        """
        with self._lock:
            return (
                (self._remaining, self._reset_seconds)
                if self._heard and self._remaining is not None
                else None
            )

    def restore_remaining(self, remaining: int) -> None:
        """Start from a budget remembered from an earlier run (the cache keeps it until RapidAPI's reset)."""
        with self._lock:
            if self._remaining is None:
                self._remaining = remaining

    def _check_budget(self) -> None:
        with self._lock:
            if self._blocked:
                raise AxessoBudgetExhausted(self._blocked)
            if self._remaining is not None and self._remaining < self._floor:
                raise AxessoBudgetExhausted(
                    f"stopped calling: RapidAPI reports {self._remaining} calls left, under the floor of "
                    f"{self._floor} (lower WHAZZAT_RATELIMIT_FLOOR to spend them)"
                )

    def _read_budget(self, response: requests.Response) -> None:
        remaining = _int_header(response, REMAINING_HEADER)
        reset = _int_header(response, RESET_HEADER)
        with self._lock:
            if remaining is not None:
                crossing = self._remaining is None or self._remaining >= self._floor
                self._remaining = remaining
                self._heard = True
                if remaining < self._floor and crossing:
                    logger.warning(
                        "RapidAPI reports %d Axesso calls left, under the floor of %d: no more calls.",
                        remaining,
                        self._floor,
                    )
            if reset is not None:
                self._reset_seconds = float(reset)

    def _is_retryable(self, response: requests.Response) -> bool:
        # A 429 with nothing left is the monthly quota, not a burst limit: waiting will not help.
        if response.status_code == 429 and _int_header(response, REMAINING_HEADER) == 0:
            return False
        return default_is_retryable(response)

    # --- the call ------------------------------------------------------------------------------------
    def fetch(self, query: SearchQuery) -> tuple[Any, int]:
        """The decoded JSON body of a successful search and the number of HTTP calls it took.

        Raises an :class:`AxessoError` subclass for everything else, with a reason safe to show.
        """
        self._check_budget()
        params = {
            "domainCode": query.domain,
            "keyword": query.keyword,
            "page": query.page,
            "sortBy": query.sort,
        }
        headers = {
            "X-RapidAPI-Key": self._api_key.get_secret_value(),
            "X-RapidAPI-Host": RAPIDAPI_HOST,
            "Accept": "application/json",
        }
        try:
            result = get_with_retries(
                self._session,
                self._url,
                policy=self._policy,
                params=params,
                headers=headers,
                is_retryable=self._is_retryable,
                on_response=self._read_budget,
            )
        except TransportError as error:
            raise AxessoUnavailable(
                f"could not be reached ({error} after {error.attempts} attempts)", error.attempts
            ) from None
        response, calls = result.response, result.attempts
        status = response.status_code
        if status == 200:
            try:
                return response.json(), calls
            except ValueError:
                raise AxessoUnavailable("answered with malformed JSON", calls) from None
        message = self._scrub(_error_message(response))
        if status in (401, 403):
            reason = f"rejected the key (HTTP {status}{message}): check RAPIDAPI_KEY"
            with self._lock:
                self._blocked = reason  # every other call would be refused too
            raise AxessoKeyRejected(reason, calls)
        if status == 404:
            raise AxessoNotFound(f"found no listings (HTTP 404{message})", calls)
        if status == 429:
            raise AxessoUnavailable(f"is rate-limited (HTTP 429 after {calls} attempts)", calls)
        if default_is_retryable(response):
            raise AxessoUnavailable(f"failed (HTTP {status} after {calls} attempts)", calls)
        raise AxessoRejected(f"refused the request (HTTP {status}{message})", calls)

    def _scrub(self, text: str) -> str:
        secret = self._api_key.get_secret_value()
        return text.replace(secret, "***") if secret else text


def _int_header(response: requests.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


def _error_message(response: requests.Response) -> str:
    """ ": <Axesso's message>" from an error body, or "" when there is none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f": {str(message)[:160]}" if message else ""
