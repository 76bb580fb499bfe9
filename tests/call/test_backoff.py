import random

import pytest

from sandra_tui.call.backoff import Backoff, attempt_log_line


def test_guide_schedule():
    assert Backoff().schedule() == [1000, 2000, 4000, 8000, 16000]


def test_ceiling():
    b = Backoff(max_attempts=8, base_delay_ms=1000, max_delay_ms=30000)
    assert b.schedule()[-3:] == [30000, 30000, 30000]


def test_jitter_stays_within_bounds_and_ceiling():
    b = Backoff(max_attempts=10, jitter=0.2, rng=random.Random(7))
    for n in range(1, 11):
        d = b.delay_ms(n)
        nominal = min(1000 * 2 ** (n - 1), 30000)
        assert nominal * 0.8 - 1 <= d <= min(nominal * 1.2, 30000) + 1


def test_attempt_numbers_start_at_one():
    with pytest.raises(ValueError):
        Backoff().delay_ms(0)


def test_log_line_matches_the_guide():
    assert attempt_log_line(1, 5, 1000, "ice_failed") == (
        "Reconnection attempt 1/5. Retrying in 1000ms. Reason: ice_failed"
    )
