"""The local agent's rate_limits.updated: OpenAI's shape (the SDK's model), its bookkeeping."""

from openai.types.realtime import RateLimitsUpdatedEvent

from sandra_tui.server.rate_window import REQUESTS_PER_MIN, TOKENS_PER_MIN, RateWindow, reserved_tokens


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def by_name(limits):
    return {r["name"]: r for r in limits}


def test_each_response_spends_a_request_and_its_tokens_and_validates():
    clock = Clock()
    window = RateWindow(clock)
    first = by_name(window.spend(reserved_tokens("hello there")))
    clock.now += 12.5
    second = window.spend(100)
    RateLimitsUpdatedEvent.model_validate({"type": "rate_limits.updated", "event_id": "event_1",
                                           "rate_limits": second})
    second = by_name(second)
    assert first["requests"]["remaining"] == REQUESTS_PER_MIN - 1
    assert second["requests"]["remaining"] == REQUESTS_PER_MIN - 2
    assert second["tokens"]["remaining"] == TOKENS_PER_MIN - reserved_tokens("hello there") - 100
    assert first["tokens"]["reset_seconds"] == 60.0 and second["tokens"]["reset_seconds"] == 47.5


def test_the_window_starts_again_after_a_minute_and_never_goes_below_zero():
    clock = Clock()
    window = RateWindow(clock)
    assert by_name(window.spend(10 * TOKENS_PER_MIN))["tokens"]["remaining"] == 0
    clock.now += 60.0
    fresh = by_name(window.spend(0))
    assert fresh["tokens"]["remaining"] == TOKENS_PER_MIN
    assert fresh["requests"]["remaining"] == REQUESTS_PER_MIN - 1
    assert fresh["requests"]["reset_seconds"] == 60.0
