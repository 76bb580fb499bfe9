"""Exponential backoff with a ceiling and optional jitter, as the product guide specifies."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    max_attempts: int = 5
    base_delay_ms: int = 1000
    max_delay_ms: int = 30000
    jitter: float = 0.0  # +/- fraction
    rng: random.Random | None = None

    def delay_ms(self, attempt: int) -> int:
        """Delay before attempt n (1-based): min(base * 2^(n-1), max), jittered."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        delay = min(self.base_delay_ms * 2 ** (attempt - 1), self.max_delay_ms)
        if self.jitter:
            rng = self.rng or random
            delay *= 1 + rng.uniform(-self.jitter, self.jitter)
            delay = min(delay, self.max_delay_ms)
        return max(0, int(round(delay)))

    def schedule(self) -> list[int]:
        return [self.delay_ms(n) for n in range(1, self.max_attempts + 1)]


def attempt_log_line(attempt: int, max_attempts: int, delay_ms: int, reason: str) -> str:
    return f"Reconnection attempt {attempt}/{max_attempts}. Retrying in {delay_ms}ms. Reason: {reason}"
