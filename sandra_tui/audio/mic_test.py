"""The microphone test: record a few seconds from the microphone, then play them back on the
speaker, so the operator hears what Sandra would hear (with the microphone gain) at the
output volume. Runs on the engine's DeviceAudio while no call is up.

Playback is paced by what the speaker has played (`frames_played`), never more than a few
frames ahead: the playout buffer holds a second at most, and a busy machine that wakes us
late still plays the whole recording, in order.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from sandra_tui.audio.devices import AudioUnavailable
from sandra_tui.audio.frames import FRAME_MS, FRAME_SAMPLES, peak_dbfs, rms_dbfs

AHEAD_FRAMES = 5  # queued for the speaker beyond what it played (100 ms)
QUIET_PEAK_DBFS = -40.0  # a peak below this: the microphone hears (almost) nothing
CLIP_PEAK_DBFS = -0.5  # a peak above this: clipped (lower the gain)
# A microphone that delivers nothing for this long beyond the recording time is not working.
# Generous because a loaded machine delays callbacks (a real device never pauses for a second).
STALL_S = 2.0


@dataclass
class MicTestResult:
    seconds: float  # recorded
    peak_dbfs: float
    rms_dbfs: float
    played_frames: int
    record_s: float  # wall time of each phase
    play_s: float
    verdict: str
    samples: np.ndarray  # what was recorded (after the gain), mono int16 48 kHz

    def summary(self) -> str:
        return (f"Recorded {self.seconds:.1f} s: peak {self.peak_dbfs:.0f} dBFS, level {self.rms_dbfs:.0f} dBFS. "
                f"{self.verdict}")


def verdict(peak: float) -> str:
    if peak < QUIET_PEAK_DBFS:
        return "Very quiet: check the microphone is the right one and not muted, or raise the gain."
    if peak > CLIP_PEAK_DBFS:
        return "Clipped: lower the microphone gain."
    return "Level is fine."


async def record(devices, frames: int, gain=None) -> np.ndarray:
    """`frames` 20 ms frames from the microphone (gain applied), into one array."""
    out = np.zeros(frames * FRAME_SAMPLES, dtype=np.int16)
    while devices.mic is not None and len(devices.mic.frames):  # stale frames from before the test
        devices.read()
    got, quiet_since = 0, time.monotonic()
    while got < frames:
        if not await devices.wait_frame(0.1):
            if time.monotonic() - quiet_since > STALL_S:
                raise AudioUnavailable(f"the microphone delivered nothing for {STALL_S:.0f} s "
                                       f"({got * FRAME_MS / 1000:.1f} s recorded)")
            continue
        quiet_since = time.monotonic()
        frame = out[got * FRAME_SAMPLES:(got + 1) * FRAME_SAMPLES]
        np.copyto(frame, devices.read())
        if gain is not None:
            gain.apply(frame)
        got += 1
    return out


async def play(playout, samples: np.ndarray, volume=None, timeout_s: float = 30.0) -> int:
    """Every frame of `samples` through the playout buffer; returns the frames the speaker took."""
    playback = samples.copy()  # the volume is applied to a copy: the result keeps the recording
    if volume is not None:
        volume.apply(playback)
    frames = len(playback) // FRAME_SAMPLES
    playout.flush()
    played0, gone0 = playout.frames_played, playout.dropped + playout.late
    sent = played = 0
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            played = playout.frames_played - played0
            done = played + playout.dropped + playout.late - gone0  # dropped frames are done too
            if sent == frames and done >= frames:
                break
            if time.monotonic() > deadline:
                raise AudioUnavailable("the speaker stopped playing during the microphone test")
            # As deep as the buffer's target and no deeper: it starts at its target, and drops
            # frames when kept above it.
            while sent < frames and sent - done < max(2, playout.target_frames):
                # Views of one array: the buffer keeps a reference per frame, not a copy.
                playout.push(playback[sent * FRAME_SAMPLES:(sent + 1) * FRAME_SAMPLES])
                sent += 1
            await asyncio.sleep(FRAME_MS / 1000 / 2)
        await asyncio.sleep(playout.target_frames * FRAME_MS / 1000)  # the last frames leave the device
    finally:
        playout.flush()  # also when cancelled (the dialog closed): nothing of the test plays on
    return played


async def run_mic_test(devices, seconds: float = 3.0, *, gain=None, volume=None, on_phase=None) -> MicTestResult:
    """Record `seconds`, then play them back. `on_phase("recording" | "playing")` is told as
    each phase starts."""
    if devices.mic is None or devices.speaker is None:
        raise AudioUnavailable("no microphone or speaker is open")
    frames = max(1, round(seconds * 1000 / FRAME_MS))
    if on_phase is not None:
        on_phase("recording")
    t0 = time.monotonic()
    samples = await record(devices, frames, gain)
    t1 = time.monotonic()
    if on_phase is not None:
        on_phase("playing")
    played = await play(devices.playout, samples, volume)
    t2 = time.monotonic()
    peak = peak_dbfs(samples)
    return MicTestResult(frames * FRAME_MS / 1000, peak, rms_dbfs(samples), played, t1 - t0, t2 - t1,
                         verdict(peak), samples)
