"""Bridges the ICE probe (config.probe) to the planner's `probe(servers, timeout_s)` shape."""

from __future__ import annotations


def make_probe():
    try:
        from sandra_tui.config import probe as probe_mod
    except ImportError:
        return None

    async def probe(servers, timeout_s: float) -> dict[str, float | None]:
        targets = [probe_mod.ProbeTarget(s.url, s.username, s.credential) for s in servers]
        results = await probe_mod.probe_servers(targets, timeout_s)
        return {r.url: (r.rtt_ms if r.reachable else None) for r in results}

    return probe
