"""The reconnect policy: state in, decision out. No clock, no network, no tasks.

The supervisor tells it what happened to each attempt (`failed`, `dropped`, `expired`) and does
what the returned `Decision` says: wait `delay_ms` and try attempt `attempt`, or give up.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandra_tui.call.backoff import Backoff


@dataclass(frozen=True)
class Decision:
    reason: str
    attempt: int = 0  # the attempt about to be made (1-based); 0 when giving up
    max_attempts: int = 0
    delay_ms: int = 0
    give_up: bool = False
    retryable: bool = True  # giving up: whether a manual retry can help (not for bad credentials)


class ReconnectPolicy:
    def __init__(self, backoff: Backoff, stable_after_s: float) -> None:
        self.backoff = backoff
        self.stable_after_s = stable_after_s
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def permanent(self, reason: str, retryable: bool = True) -> Decision:
        """An error no retry can fix (malformed reply, 400/401/403/404): give up at once."""
        return Decision(reason, give_up=True, retryable=retryable)

    def failed(self, reason: str, retry_after_s: float | None = None) -> Decision:
        """An attempt that never connected (timeout, refused, 429, 5xx, ICE failed)."""
        return self._next(reason, retry_after_s)

    def dropped(self, reason: str, connected_for_s: float) -> Decision:
        """A connected call whose path died. A call that held for `stable_after_s` earns a fresh
        set of attempts; a flapping link does not."""
        if connected_for_s >= self.stable_after_s:
            self.failures = 0
        return self._next(reason, None)

    def expired(self, reason: str = "session_expired") -> Decision:
        """The server ended the session on purpose (its time cap): reconnect at once, without
        backoff and without spending an attempt."""
        return Decision(reason, attempt=0, max_attempts=self.backoff.max_attempts, delay_ms=0)

    def _next(self, reason: str, retry_after_s: float | None) -> Decision:
        self.failures += 1
        if self.failures > self.backoff.max_attempts:
            return Decision(reason, give_up=True)
        delay = self.backoff.delay_ms(self.failures)
        if retry_after_s is not None:
            # Honour the server's Retry-After, but never past our own ceiling: a header of 86400
            # would otherwise park the call for a day.
            delay = max(delay, min(int(retry_after_s * 1000), self.backoff.max_delay_ms))
        return Decision(reason, self.failures, self.backoff.max_attempts, delay)
