"""Bridges the ICE probe (config.probe) to the planner's `probe(servers, timeout_s)` shape.

aiortc uses one STUN and one TURN server, so the plan needs only the fastest healthy server of
each kind: we stop as soon as each kind has an answer (or all of that kind failed) instead of
waiting out the deadline for silent servers.
"""

from __future__ import annotations

import asyncio
import contextlib


def make_probe():
    try:
        from sandra_tui.config import probe as probe_mod
    except ImportError:
        return None

    async def probe(servers, timeout_s: float) -> dict[str, float | None]:
        rtts: dict[str, float | None] = {s.url: None for s in servers}
        tasks = {
            asyncio.ensure_future(probe_mod.probe_one(probe_mod.ProbeTarget(s.url, s.username, s.credential),
                                                      timeout_s)): s
            for s in servers
        }
        pending_by_kind = {"stun": sum(s.kind == "stun" for s in servers),
                           "turn": sum(s.kind == "turn" for s in servers)}
        satisfied = {kind: n == 0 for kind, n in pending_by_kind.items()}
        pending = set(tasks)
        try:
            while pending and not all(satisfied.values()):
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    server, result = tasks[task], task.result()
                    pending_by_kind[server.kind] -= 1
                    if result.reachable:
                        rtts[server.url] = result.rtt_ms
                        satisfied[server.kind] = True
                    elif pending_by_kind[server.kind] == 0:
                        satisfied[server.kind] = True
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return rtts

    return probe
