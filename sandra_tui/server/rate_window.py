"""What the local agent reports in `rate_limits.updated`, shaped like OpenAI's: a requests and a
tokens budget per minute, with tokens reserved for the reply when a response starts (the SDK's
RateLimitsUpdatedEvent: "emitted at the beginning of a Response"). The figures are the agent's own
bookkeeping, so a client's display of them can be tested offline; nothing is enforced by them."""

from __future__ import annotations

import time
from collections.abc import Callable

REQUESTS_PER_MIN = 5000
TOKENS_PER_MIN = 40000
WINDOW_S = 60.0


def reserved_tokens(text: str) -> int:
    """About what a realtime model reserves for a spoken reply: text tokens plus its audio."""
    words = len(text.split())
    return 64 + words * 4


class RateWindow:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._start = clock()
        self._requests = 0
        self._tokens = 0

    def spend(self, tokens: int) -> list[dict]:
        """Count one response of `tokens`; the `rate_limits` list to send."""
        now = self.clock()
        if now - self._start >= WINDOW_S:
            self._start, self._requests, self._tokens = now, 0, 0
        self._requests += 1
        self._tokens += max(0, int(tokens))
        reset = round(max(0.0, WINDOW_S - (now - self._start)), 3)
        return [
            {"name": "requests", "limit": REQUESTS_PER_MIN,
             "remaining": max(0, REQUESTS_PER_MIN - self._requests), "reset_seconds": reset},
            {"name": "tokens", "limit": TOKENS_PER_MIN,
             "remaining": max(0, TOKENS_PER_MIN - self._tokens), "reset_seconds": reset},
        ]
