"""A per-chat limit on messages, so one tab (or a script posting to its socket) cannot flood the server.

A token bucket: a chat may send ``per_minute`` messages at once, then one more every ``60 / per_minute``
seconds. Unlike a fixed window, a user who hits the limit waits seconds, not the rest of the minute. Each
chat has its own bucket (in its session state), so one user's flood never slows another's chat.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

#: Seconds on a clock that only goes forward (tests pass a fake one).
Clock = Callable[[], float]


class MessageLimiter:
    """Lets a message through, or says how long to wait before the next one may go."""

    def __init__(self, per_minute: int, *, clock: Clock = time.monotonic) -> None:
        if per_minute < 0:
            raise ValueError("per_minute must be 0 (no limit) or more")
        self.per_minute = per_minute
        self.clock = clock
        self._tokens = float(per_minute)
        self._updated: float | None = None  # first message: the bucket starts full

    def take(self) -> float:
        """0.0 when a message may go ahead (and counts it), else the seconds until one may (then nothing
        is counted)."""
        if self.per_minute == 0:
            return 0.0
        now = self.clock()
        refill = self.per_minute / 60.0  # tokens a second
        if self._updated is not None:
            self._tokens = min(float(self.per_minute), self._tokens + (now - self._updated) * refill)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / refill


def wait_words(seconds: float) -> str:
    """ "try again in 7 s" style text: whole seconds, rounded up so the retry is not refused again."""
    return f"{max(1, math.ceil(seconds))} s"
