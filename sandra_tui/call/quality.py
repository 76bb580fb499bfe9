"""Call quality from aiortc getStats(): RTT, jitter in ms, loss, and an E-model MOS estimate."""

from __future__ import annotations

from dataclasses import dataclass

from sandra_tui.media.constants import SAMPLE_RATE as OPUS_CLOCK_HZ


def mos(one_way_ms: float, jitter_ms: float, loss_pct: float) -> float:
    """Simplified ITU-T G.107 E-model, as many softphones use it."""
    effective = one_way_ms + 2 * jitter_ms + 10.0
    if effective < 160:
        r = 93.2 - effective / 40
    else:
        r = 93.2 - (effective - 120) / 10
    r -= 2.5 * loss_pct
    r = max(0.0, min(100.0, r))
    score = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)
    return round(max(1.0, min(4.5, score)), 2)


@dataclass
class StatsSnapshot:
    packets_received: int = 0
    bytes_received: int = 0
    packets_lost: int = 0
    jitter_ms: float | None = None
    rtt_ms: float | None = None


def read_stats(report) -> StatsSnapshot:
    """Pick the inbound audio and remote-inbound entries out of an RTCStatsReport."""
    snap = StatsSnapshot()
    for stats in report.values():
        kind = getattr(stats, "type", "")
        if kind == "inbound-rtp":
            snap.packets_received += stats.packetsReceived or 0
            snap.bytes_received += getattr(stats, "bytesReceived", 0) or 0
            snap.packets_lost += max(0, stats.packetsLost or 0)
            if stats.jitter is not None:
                snap.jitter_ms = stats.jitter * 1000.0 / OPUS_CLOCK_HZ
        elif kind == "remote-inbound-rtp":
            if stats.roundTripTime is not None:
                snap.rtt_ms = stats.roundTripTime * 1000.0
    return snap


def loss_percent(lost: int, received: int) -> float:
    total = lost + received
    return 100.0 * lost / total if total else 0.0
