"""Real microphone and speaker for a call: device choice, switching, fallback, echo canceller.

It is the engine's Source (20 ms frames from the mic) and owns the PlayoutBuffer the speaker
pulls from. The streams live across reconnects; only the peer connection is renewed.

Health (`check`, about once a second) tells two things apart that look alike from here:
- the device is gone: PortAudio stopped the stream, or it stopped calling back and a fresh
  device list no longer has it. Then, and only then, the stream moves to the default device;
  when that is the same device it is reopened with a growing back-off, never in a loop;
- the callbacks are late: the stream runs, and the device is still listed, but the CPU is
  busy (gaps between callbacks, xruns). That is reported, and the stream is left alone.
`switch` and `check` run on the engine's one audio worker thread; a lock keeps a direct
caller (tests, the CLI) from swapping streams under it as well.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from sandra_tui.audio.device_io import BLOCK_MS, MicStream, SpeakerStream
from sandra_tui.audio.devices import AudioUnavailable, Device, find_device, fresh_devices, list_devices
from sandra_tui.audio.echo import EchoCanceller, EchoUnavailable
from sandra_tui.audio.playout import FRAME, PlayoutBuffer
from sandra_tui.audio.sources import Source
from sandra_tui.media.constants import SAMPLE_RATE

log = logging.getLogger(__name__)

STALL_S = 1.0  # no callback for this long: the stream may be dead (a fresh list says)
LATE_GAP_S = 0.1  # a gap this long between callbacks (5 blocks of 20 ms) is the CPU, not the path
RETRY_S, RETRY_MAX_S = 2.0, 60.0  # reopening the same device: back-off from, doubling up to
FRESH_FOR_S = 5.0  # a fresh device list is reused this long
STUCK_S = 10.0  # alive and listed but silent this long: reopened (with the back-off)


@dataclass
class Health:
    """One finding of `check`: `key` names the condition (for coalescing notices)."""

    key: str
    message: str
    switched: bool = False  # a stream moved or was reopened (the device line changed)


class DeviceAudio(Source):
    def __init__(self, input_device: str = "", output_device: str = "", *, echo_cancellation: bool = True,
                 noise_suppression: bool = False, playout_target_ms: int = 60, device_rate: int = 0,
                 block_ms: int = BLOCK_MS) -> None:
        self.playout = PlayoutBuffer(target_ms=playout_target_ms, min_ms=min(40, playout_target_ms))
        self.device_rate = device_rate
        self.block_ms = block_ms
        self.notices: list[str] = []  # read and cleared by the engine
        self.fallbacks = 0  # streams moved to another device because theirs was gone
        self.reopened = 0  # streams reopened on their own device
        self.late_checks = 0  # checks that found the callbacks running late
        self._lock = threading.RLock()
        self._retry: dict[str, tuple[float, float]] = {}  # kind -> (not before, next back-off)
        self._fresh: tuple[float, list[Device] | None] | None = None
        self.echo: EchoCanceller | None = None
        self.mic: MicStream | None = None
        self.speaker: SpeakerStream | None = None
        self._trace = None
        self.wanted_input = input_device
        self.wanted_output = output_device
        devices = list_devices()
        mic_device = self._choose(devices, input_device, "input")
        speaker_device = self._choose(devices, output_device, "output")
        # Only once both devices are found: the canceller loads livekit's FFI library (about
        # 19 MB), which a call that goes text only never needs.
        if echo_cancellation:
            try:
                self.echo = EchoCanceller(noise_suppression=noise_suppression)
            except EchoUnavailable as exc:
                self.notices.append(f"{exc}; speak through a headset to avoid echo")
        self.mic = self._open_mic(mic_device)
        try:
            self.speaker = self._open_speaker(speaker_device)
        except AudioUnavailable:
            self.mic.close()
            raise
        self._tune_echo()

    # -- choosing and opening -------------------------------------------------------------------
    def _choose(self, devices: list[Device], wanted: str, kind: str) -> Device:
        device = find_device(devices, wanted, kind)
        if device is None and wanted:
            fallback = find_device(devices, "", kind)
            if fallback is not None:
                self.notices.append(f"{'Microphone' if kind == 'input' else 'Speaker'} {wanted!r} not found; "
                                    f"using {fallback.name!r}")
                return fallback
        if device is None:
            raise AudioUnavailable(f"no audio {kind} device found")
        return device

    def _open_mic(self, device: Device) -> MicStream:
        stream = MicStream(device, self.device_rate, on_capture=self.echo.capture_into if self.echo else None,
                           block_ms=self.block_ms)
        stream.trace = self._trace
        return stream

    def _open_speaker(self, device: Device) -> SpeakerStream:
        stream = SpeakerStream(device, self.playout, self.device_rate,
                               on_render=self.echo.render if self.echo else None, block_ms=self.block_ms)
        stream.trace = self._trace
        return stream

    @property
    def trace(self):
        return self._trace

    @trace.setter
    def trace(self, trace) -> None:
        self._trace = trace
        for stream in (self.mic, self.speaker):
            if stream is not None:
                stream.trace = trace

    def _tune_echo(self) -> None:
        if self.echo is not None and self.mic is not None and self.speaker is not None:
            self.echo.set_delay(self.mic.latency_ms + self.speaker.latency_ms + self.block_ms)

    def switch(self, input_device: str | None, output_device: str | None) -> None:
        """Open the new device first, then close the old one: the call never loses its audio."""
        with self._lock:
            devices = list_devices()
            for wanted, kind in ((input_device, "input"), (output_device, "output")):
                if wanted is None:
                    continue
                device = find_device(devices, wanted, kind)
                if device is None:
                    raise AudioUnavailable(f"no {kind} device matches {wanted!r}")
                if kind == "input":
                    old, self.mic, self.wanted_input = self.mic, self._open_mic(device), wanted
                else:
                    old, self.speaker, self.wanted_output = self.speaker, self._open_speaker(device), wanted
                self._retry.pop(kind, None)
                if old is not None:
                    old.close()
            self._tune_echo()

    def check(self) -> list[Health]:
        """Called about once a second (on the engine's audio worker): what is wrong, if anything."""
        with self._lock:
            found: list[Health] = []
            late = False
            fresh: list[Device] | None = None
            for kind in ("input", "output"):
                stream = self.mic if kind == "input" else self.speaker
                if stream is None:
                    continue
                gap, xruns = stream.take_lateness()
                if not stream.gone() and not stream.stalled(STALL_S):
                    late = late or gap > LATE_GAP_S or xruns > 0
                    self._retry.pop(kind, None)
                    continue
                gone = stream.gone()
                if not gone:  # silent but running: dead device, or a starved CPU?
                    if fresh is None:
                        fresh = self._fresh_devices()
                    listed = fresh is None or any(d.name == stream.device.name for d in fresh)
                    if listed and time.monotonic() - stream.last_callback < STUCK_S:
                        late = True  # the device is there: the callbacks are just late
                        continue
                health = self._recover(kind, stream, "stopped" if not gone else (stream.error or "stopped"))
                if health is not None:
                    found.append(health)
            if late:
                self.late_checks += 1
                found.append(Health("late", "Audio is running late (the CPU is busy)"))
            if any(h.switched for h in found):
                self._tune_echo()
            return found

    def _fresh_devices(self) -> list[Device] | None:
        # A child process per ask: kept for a few seconds so a long stall does not spawn one
        # a second on a machine that is already busy.
        now = time.monotonic()
        if self._fresh is None or now - self._fresh[0] > FRESH_FOR_S:
            self._fresh = (now, fresh_devices())
        return self._fresh[1]

    def _recover(self, kind: str, stream, why: str) -> Health | None:
        """A dead stream: the default device, or the same one again after a back-off."""
        label = "Microphone" if kind == "input" else "Speaker"
        now = time.monotonic()
        not_before, delay = self._retry.get(kind, (0.0, RETRY_S))
        if now < not_before:
            return None  # backing off; already reported
        try:
            default = find_device(list_devices(), "", kind)
        except AudioUnavailable:
            default = None
        same = default is None or default.name == stream.device.name
        self._retry[kind] = (now + delay, min(RETRY_MAX_S, delay * 2))
        first = delay == RETRY_S
        target = stream.device if same else default
        try:
            new = self._open_mic(target) if kind == "input" else self._open_speaker(target)
        except AudioUnavailable as exc:
            if not first:
                return None
            return Health(f"{kind}-dead", f"{label} {stream.device.name!r} {why}; retrying: {exc}")
        old = stream
        if kind == "input":
            self.mic = new
        else:
            self.speaker = new
        old.close()
        if same:
            self.reopened += 1
            return Health(f"{kind}-reopened", f"{label} {stream.device.name!r} {why}; reopened", switched=True)
        self.fallbacks += 1
        self._retry.pop(kind, None)
        return Health(f"{kind}-fallback", f"{label} {stream.device.name!r} {why}; switched to {default.name!r}",
                      switched=True)

    # -- engine side ------------------------------------------------------------------------
    async def wait_frame(self, timeout: float) -> bool:
        """Until the microphone has a frame ready (True) or `timeout` passes (False)."""
        mic = self.mic
        if mic is None:
            return False
        if len(mic.frames):
            return True
        return await mic.frames.wait(timeout)

    def read(self) -> np.ndarray:
        frame = self.mic.frames.get() if self.mic is not None else None
        # A copy: the frame is a slot of the microphone's ring, refilled a few frames later.
        return frame.copy() if frame is not None else np.zeros(FRAME, dtype=np.int16)

    @property
    def input_name(self) -> str:
        return self.mic.device.name if self.mic else ""

    @property
    def output_name(self) -> str:
        return self.speaker.device.name if self.speaker else ""

    def describe(self) -> str:
        parts = [f"mic {self.input_name or 'none'}", f"speaker {self.output_name or 'none'}"]
        rates = {s.rate for s in (self.mic, self.speaker) if s is not None}
        if rates and rates != {SAMPLE_RATE}:
            parts.append("resampled " + "/".join(f"{r // 1000 if r % 1000 == 0 else r / 1000} kHz"
                                                 for r in sorted(rates)))
        parts.append("echo cancellation " + ("on" if self.echo and not self.echo.failed else "off"))
        return " · ".join(parts)

    def close(self) -> None:
        with self._lock:
            for stream in (self.mic, self.speaker):
                if stream is not None:
                    stream.close()
            self.mic = self.speaker = None
