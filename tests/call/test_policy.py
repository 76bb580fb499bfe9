"""The reconnect policy on its own: decisions from events, no network, no clock."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandra_tui.call.backoff import Backoff
from sandra_tui.call.policy import ReconnectPolicy


def policy(**kw) -> ReconnectPolicy:
    return ReconnectPolicy(Backoff(kw.pop("max_attempts", 5), kw.pop("base", 1000), kw.pop("cap", 30000)),
                           kw.pop("stable_after_s", 10.0))


def test_the_guides_schedule_then_give_up():
    p = policy()
    decisions = [p.failed("ice_failed") for _ in range(6)]
    assert [(d.attempt, d.delay_ms) for d in decisions[:5]] == [(1, 1000), (2, 2000), (3, 4000), (4, 8000), (5, 16000)]
    assert decisions[5].give_up and decisions[5].reason == "ice_failed"


@pytest.mark.parametrize("retry_after,expected", [(2, 2000), (0.1, 1000), (86400, 30000), (31, 30000)])
def test_retry_after_is_honoured_up_to_the_ceiling(retry_after, expected):
    assert policy().failed("rate_limited", retry_after).delay_ms == expected


def test_a_stable_call_earns_fresh_attempts_a_flapping_one_does_not():
    p = policy(stable_after_s=10)
    p.failed("x"), p.failed("x")
    assert p.dropped("media_timeout", connected_for_s=3).attempt == 3
    assert p.dropped("media_timeout", connected_for_s=60).attempt == 1


def test_session_expired_reconnects_at_once_without_spending_an_attempt():
    p = policy()
    p.failed("x")
    d = p.expired()
    assert (d.delay_ms, d.give_up, d.reason) == (0, False, "session_expired")
    assert p.failures == 1


def test_permanent_errors_give_up_at_once():
    d = policy().permanent("credentials_rejected", retryable=False)
    assert d.give_up and not d.retryable and d.attempt == 0


@given(st.lists(st.tuples(st.sampled_from(["failed", "dropped", "expired"]), st.floats(0, 100),
                          st.one_of(st.none(), st.floats(0, 1e6))), max_size=40))
def test_never_waits_past_the_ceiling_and_gives_up_within_max_attempts(events):
    p = ReconnectPolicy(Backoff(5, 1000, 30000, 0.1, random.Random(1)), 10.0)
    streak = 0
    for kind, connected_for, retry_after in events:
        if kind == "failed":
            d = p.failed("x", retry_after)
            streak += 1
        elif kind == "dropped":
            d = p.dropped("x", connected_for)
            streak = 1 if connected_for >= 10 else streak + 1
        else:
            d = p.expired()
        assert d.delay_ms <= 30000
        assert d.give_up == (streak > 5)
        if d.give_up:
            break
