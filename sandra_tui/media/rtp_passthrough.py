"""Hand every audio RTP packet to the decoder at once, bypassing aiortc's jitter buffer.

aiortc 1.16 holds 4 audio packets before decoding (~80 ms) and, after one lost packet,
discards good packets and keeps ~300 ms of extra delay (aiortc issue 543). Opus puts one
frame in one packet, so no reassembly is needed: our PlayoutBuffer orders frames by RTP
timestamp, conceals holes and adapts its depth instead. Duplicate and very old packets are
dropped here so the decoder never sees them twice.
"""

from __future__ import annotations

import logging
from collections import deque

from aiortc.jitterbuffer import JitterFrame

from sandra_tui.shims import aiortc as aiortc_shim

log = logging.getLogger(__name__)

SEEN = 64  # sequence numbers remembered for duplicate detection


class PassThroughJitterBuffer:
    capacity = 16  # read by nothing on the audio path; kept for interface parity

    def __init__(self) -> None:
        self._seen: deque[int] = deque(maxlen=SEEN)  # the latest sequence numbers, oldest first
        self.packets = 0
        self.duplicates = 0

    def add(self, packet) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if seq in self._seen:
            self.duplicates += 1
            return False, None
        self._seen.append(seq)
        self.packets += 1
        return False, JitterFrame(data=aiortc_shim.packet_payload(packet), timestamp=packet.timestamp)

    def remove(self, count: int) -> None:
        pass


class ReorderSafeMapper:
    """RTP timestamp -> pts from 0. aiortc's mapper takes any step back for a 32-bit wrap,
    which a reordered packet (now that packets skip the jitter buffer) would trigger."""

    def __init__(self) -> None:
        self._origin: int | None = None
        self._last = 0  # unwrapped

    def map(self, timestamp: int) -> int:
        if self._origin is None:
            self._origin = self._last = timestamp
            return 0
        step = (timestamp - self._last) & 0xFFFFFFFF
        if step >= 0x80000000:
            step -= 1 << 32  # older than the newest: a reordered packet
        unwrapped = self._last + step
        self._last = max(self._last, unwrapped)
        return unwrapped - self._origin


def install(receiver, jitter_buffer: PassThroughJitterBuffer | None = None) -> bool:
    """Swap the audio receiver's jitter buffer; False (and a log line) if aiortc changed."""
    buffer = jitter_buffer if jitter_buffer is not None else PassThroughJitterBuffer()
    if not aiortc_shim.set_receive_path(receiver, buffer, ReorderSafeMapper()):
        log.warning("aiortc %s receiver has no jitter-buffer slot: keeping its own jitter buffer",
                    aiortc_shim.version())
        return False
    return True
