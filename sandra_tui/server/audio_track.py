"""The agent's outgoing audio: queued speech, silence in between, paced by the wall clock.

It always sends (silence when idle), as a real server does, so a client can tell a live path
from a dead one by inbound RTP alone. Frames leave as mono Opus packets (what libwebrtc sends
unless asked for stereo, so what a client meets in the field), not aiortc's stereo 96 kbit/s.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from sandra_tui.media.opus import OpusTrack
from sandra_tui.media.pacing import FramePacer
from sandra_tui.media.constants import FRAME_MS
from sandra_tui.media.constants import FRAME_SAMPLES as FRAME, SAMPLE_RATE  # noqa: F401 - agent.py imports them here



class AgentAudioTrack(OpusTrack):
    def __init__(self) -> None:
        super().__init__()
        self._frames: deque[np.ndarray] = deque()
        self._pacer = FramePacer()
        self.on_started = None  # called when queued speech starts leaving
        self.on_drained = None  # called when the queue empties after speech
        self._playing = False
        self.frames_sent = 0
        # mirror mode: frames sent straight back; loud edges timed for round-trip breakdowns
        self._edge_frames: dict[int, float] = {}  # id(frame) -> when it arrived
        self.mirror_trace: deque[dict] = deque(maxlen=64)

    def play(self, samples: np.ndarray) -> float:
        """Queue speech; returns its duration in seconds."""
        samples = np.asarray(samples, dtype=np.int16)
        pad = (-len(samples)) % FRAME
        if pad:
            samples = np.concatenate([samples, np.zeros(pad, dtype=np.int16)])
        for i in range(0, len(samples), FRAME):
            self._frames.append(samples[i : i + FRAME])
        return len(samples) / SAMPLE_RATE

    def mirror(self, samples: np.ndarray, edge_at: float | None = None) -> None:
        """Send one received frame straight back (at most 1 queued: the lowest delay; the two
        pacers drift, so now and then a frame is dropped, which a latency probe can afford)."""
        self._frames.append(samples)
        if edge_at is not None:
            self._edge_frames[id(samples)] = edge_at
        while len(self._frames) > 1:
            dropped = self._frames.popleft()
            edge = self._edge_frames.pop(id(dropped), None)
            if edge is not None:
                # A click's first frame dropped under load: its trace time moves to the frame that
                # stays, or the round-trip trace matches the click with the next one.
                self._edge_frames.setdefault(id(self._frames[0]), edge)

    def clear(self) -> int:
        """Drop queued speech (barge-in); returns frames dropped."""
        dropped = len(self._frames)
        self._frames.clear()
        self._playing = False
        return dropped

    @property
    def queued_ms(self) -> int:
        return len(self._frames) * FRAME_MS

    async def next_frame(self) -> tuple[np.ndarray, int]:
        pts = await self._pacer.next()
        self.frames_sent += 1
        if self._frames:
            samples = self._frames.popleft()
            if self._edge_frames:
                arrived = self._edge_frames.pop(id(samples), None)
                if arrived is not None:
                    self.mirror_trace.append({"in": arrived, "out": time.monotonic()})
            if not self._playing:
                self._playing = True
                if self.on_started:
                    self.on_started()
        else:
            samples = np.zeros(FRAME, dtype=np.int16)
            if self._playing:
                self._playing = False
                if self.on_drained:
                    self.on_drained()
        return samples, pts
