"""The call's supervisor: when to connect, back off, renew, give up.

It owns one Connection at a time (two for a moment during a renewal) and asks the pure
ReconnectPolicy what to do when one fails. Renewal is make-before-break: before the server's
session cap the next connection is opened while the old one still plays, the conversation is
re-seeded into it at a quiet moment (no reply being made or played, the operator not
speaking), audio moves over, then the old call is hung up. No gap, no reconnect attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sandra_tui.call.backoff import attempt_log_line
from sandra_tui.call.connection import Connection, PathDead
from sandra_tui.call.events import CallState, ErrorEvent, ReconnectAttempt, Reconnected, SessionRenewed
from sandra_tui.call.policy import Decision, ReconnectPolicy
from sandra_tui.call.signaling import SignalingError

log = logging.getLogger("sandra_tui.call")

RENEW_RETRY_S = 30.0  # a renewal that failed is tried again this much later (the old call goes on)
QUIET_POLL_S = 0.05


class Supervisor:
    def __init__(self, *, open_connection, policy: ReconnectPolicy, set_state, emit, latency,
                 on_switch, renew_after_s: float = 0.0, renew_quiet_max_s: float = 20.0) -> None:
        self._open_connection = open_connection  # (attempt, last_reason, last_relay, renewal) -> Connection
        self.policy = policy
        self._set_state = set_state
        self._emit = emit
        self._latency = latency
        self._on_switch = on_switch  # (old | None, new): the new connection is the call's now
        self.renew_after_s = renew_after_s
        self.renew_quiet_max_s = renew_quiet_max_s
        self.current: Connection | None = None
        self.renewals = 0
        self.last_reason: str | None = None
        self._open: set[Connection] = set()
        self.hanging_up = False

    async def run(self) -> None:
        attempt, last_reason, last_relay = 0, None, False
        dropped_at: float | None = None
        try:
            while True:
                try:
                    conn = await self._connect(attempt, last_reason, last_relay)
                except SignalingError as exc:
                    self._emit(ErrorEvent(str(exc), exc.reason, fatal=not exc.retryable))
                    decision = (self.policy.failed(exc.reason, exc.retry_after_s) if exc.retryable
                                else self.policy.permanent(exc.reason, retryable=exc.status not in (401, 403)))
                except PathDead as exc:
                    decision = self.policy.failed(exc.reason)
                else:
                    if attempt:
                        total = (time.monotonic() - dropped_at) * 1000 if dropped_at else 0.0
                        log.warning("Reconnection successful!")
                        self._emit(Reconnected(attempt, round(total, 1)))
                        self._latency("reconnect_total", total)
                    self._on_switch(None, conn)
                    self._set_state(CallState.CONNECTED)
                    reason, conn = await self._hold(conn)
                    self.current = None
                    dropped_at = time.monotonic()
                    connected_for = dropped_at - (conn.connected_at or dropped_at)
                    last_relay = bool(conn.plan and conn.plan.relay_only)
                    await self._close(conn)  # frees the server's slot at once
                    decision = (self.policy.expired(reason) if reason == "session_expired"
                                else self.policy.dropped(reason, connected_for))
                if dropped_at is None:
                    dropped_at = time.monotonic()
                last_reason = self.last_reason = decision.reason
                if decision.give_up:
                    self._give_up(decision)
                    return
                attempt = max(1, decision.attempt)
                await self._wait(decision)
        finally:
            await self.close_all()

    # -- one attempt --------------------------------------------------------------------------
    async def _connect(self, attempt: int, last_reason: str | None, last_relay: bool,
                       renewal: bool = False) -> Connection:
        conn = self._open_connection(attempt, last_reason, last_relay, renewal)
        self._open.add(conn)
        try:
            await conn.__aenter__()
        except BaseException:
            self._open.discard(conn)
            raise
        return conn

    async def _close(self, conn: Connection, hangup: bool = True) -> None:
        try:
            await conn.close(hangup=hangup)
        finally:
            self._open.discard(conn)

    async def close_all(self) -> None:
        """Every connection still open is torn down (shielded: survives a second cancel)."""
        for conn in list(self._open):
            await self._close(conn, hangup=True)
        self.current = None

    def _give_up(self, decision: Decision) -> None:
        if decision.attempt == 0 and self.policy.failures > self.policy.backoff.max_attempts:
            log.warning("Reconnection failed after %d attempts. Reason: %s",
                        self.policy.failures - 1, decision.reason)
        self._set_state(CallState.FAILED, reason=decision.reason, retryable=decision.retryable)

    async def _wait(self, decision: Decision) -> None:
        if decision.delay_ms == 0 and decision.reason == "session_expired":
            log.warning("Session expired; reconnecting at once")
            self._set_state(CallState.RECONNECTING, reason=decision.reason, attempt=0,
                            max_attempts=decision.max_attempts, delay_ms=0)
            return
        log.warning(attempt_log_line(decision.attempt, decision.max_attempts, decision.delay_ms, decision.reason))
        self._emit(ReconnectAttempt(decision.attempt, decision.max_attempts, decision.delay_ms, decision.reason))
        self._set_state(CallState.RECONNECTING, reason=decision.reason, attempt=decision.attempt,
                        max_attempts=decision.max_attempts, delay_ms=decision.delay_ms)
        await asyncio.sleep(decision.delay_ms / 1000)

    # -- a live call ----------------------------------------------------------------------------
    async def _hold(self, conn: Connection) -> tuple[str, Connection]:
        """Until the path of the current connection dies; renews it on schedule meanwhile.
        Returns (reason, the connection that died)."""
        renew_at = (conn.connected_at or time.monotonic()) + self.renew_after_s if self.renew_after_s else None
        while True:
            timeout = None if renew_at is None else max(0.0, renew_at - time.monotonic())
            done, _ = await asyncio.wait({conn.dead}, timeout=timeout)
            if done:
                return conn.dead.result(), conn
            new = await self._renew(conn)
            if new is None:
                renew_at = time.monotonic() + RENEW_RETRY_S
                continue
            conn = new
            renew_at = (conn.connected_at or time.monotonic()) + self.renew_after_s

    async def _renew(self, old: Connection) -> Connection | None:
        started = time.monotonic()
        log.info("renewing the session before the server's time cap")
        try:
            new = await self._connect(0, None, bool(old.plan and old.plan.relay_only), renewal=True)
        except (SignalingError, PathDead) as exc:
            log.warning("session renewal failed (%s); the current session goes on",
                        getattr(exc, "reason", exc))
            return None
        # Switch at a quiet moment; the old path dying meanwhile means switching now.
        deadline = time.monotonic() + self.renew_quiet_max_s
        while not old.dead.done() and time.monotonic() < deadline:
            if new.dead.done():
                log.warning("the renewed session died before the switch (%s)", new.dead.result())
                await self._close(new)
                return None
            if self._quiet(old):
                break
            await asyncio.sleep(QUIET_POLL_S)
        self._on_switch(old, new)
        await self._close(old)
        self.renewals += 1
        switch_ms = round((time.monotonic() - started) * 1000, 1)
        log.info("session renewed in %.0f ms (renewal %d)", switch_ms, self.renewals)
        self._emit(SessionRenewed(switch_ms, self.renewals))
        return new

    @staticmethod
    def _quiet(conn: Connection) -> bool:
        session = conn.session
        return session is None or not (session.busy or session.user_speaking)
