"""The per-chat message limit: a token bucket on a fake clock (the handlers' use of it is tested in
tests/test_ui_handlers.py), and the settings that configure it."""

from __future__ import annotations

import pytest

from agent.core.config import get_settings
from agent.ui.rate_limit import MessageLimiter, wait_words
from agent.ui.session_state import ChatState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_the_next_message_waits_for_one_refill() -> None:
    clock = FakeClock()
    limiter = MessageLimiter(6, clock=clock)  # one message every 10 s once the burst of 6 is spent
    assert [limiter.take() for _ in range(6)] == [0.0] * 6
    assert limiter.take() == pytest.approx(10.0)
    clock.now += 4
    assert limiter.take() == pytest.approx(6.0)  # refused messages do not push the wait further out
    clock.now += 6
    assert limiter.take() == 0.0
    assert limiter.take() == pytest.approx(10.0)


def test_a_quiet_chat_gets_its_whole_burst_back_but_no_more() -> None:
    clock = FakeClock()
    limiter = MessageLimiter(3, clock=clock)
    for _ in range(3):
        limiter.take()
    clock.now += 3600  # an hour of silence refills the bucket, capped at its size
    takes = [limiter.take() for _ in range(4)]
    assert takes[:3] == [0.0] * 3 and takes[3] == pytest.approx(20.0)


def test_zero_turns_the_limit_off() -> None:
    limiter = MessageLimiter(0, clock=FakeClock())
    assert all(limiter.take() == 0.0 for _ in range(1000))
    with pytest.raises(ValueError, match="per_minute"):
        MessageLimiter(-1)


def test_waits_are_shown_in_whole_seconds_rounded_up() -> None:
    assert wait_words(9.01) == "10 s"
    assert wait_words(10.0) == "10 s"
    assert wait_words(0.2) == "1 s"


def test_the_limit_comes_from_the_settings_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().ui_messages_per_minute == 10  # the documented default
    monkeypatch.setenv("WHAZZAT_UI_MESSAGES_PER_MINUTE", "2")
    state = ChatState.for_settings(get_settings())
    assert state.limiter.per_minute == 2
    assert [state.limiter.take() for _ in range(3)][2] > 0
    monkeypatch.setenv("WHAZZAT_UI_MESSAGES_PER_MINUTE", "-5")
    with pytest.raises(ValueError, match="ui_messages_per_minute"):
        get_settings()


def test_each_chat_has_its_own_bucket() -> None:
    settings = get_settings(ui_messages_per_minute=1)
    alice, bob = ChatState.for_settings(settings), ChatState.for_settings(settings)
    assert alice.limiter.take() == 0.0 and alice.limiter.take() > 0
    assert bob.limiter.take() == 0.0  # Alice's flood costs Bob nothing
