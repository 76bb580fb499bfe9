"""Real microphone and speaker for a call: device choice, switching, fallback, echo canceller.

It is the engine's Source (20 ms frames from the mic) and owns the PlayoutBuffer the speaker
pulls from. The streams live across reconnects; only the peer connection is renewed.
"""

from __future__ import annotations

import logging

import numpy as np

from sandra_tui.audio.device_io import BLOCK_MS, MicStream, SpeakerStream
from sandra_tui.audio.devices import AudioUnavailable, Device, find_device, list_devices
from sandra_tui.audio.echo import EchoCanceller, EchoUnavailable
from sandra_tui.audio.playout import FRAME, PlayoutBuffer
from sandra_tui.audio.sources import Source

log = logging.getLogger(__name__)


class DeviceAudio(Source):
    def __init__(self, input_device: str = "", output_device: str = "", *, echo_cancellation: bool = True,
                 noise_suppression: bool = False, playout_target_ms: int = 60, device_rate: int = 0,
                 block_ms: int = BLOCK_MS) -> None:
        self.playout = PlayoutBuffer(target_ms=playout_target_ms, min_ms=min(40, playout_target_ms))
        self.device_rate = device_rate
        self.block_ms = block_ms
        self.notices: list[str] = []  # read and cleared by the engine
        self.echo: EchoCanceller | None = None
        if echo_cancellation:
            try:
                self.echo = EchoCanceller(noise_suppression=noise_suppression)
            except EchoUnavailable as exc:
                self.notices.append(f"{exc}; speak through a headset to avoid echo")
        self.mic: MicStream | None = None
        self.speaker: SpeakerStream | None = None
        self._trace = None
        self.wanted_input = input_device
        self.wanted_output = output_device
        devices = list_devices()
        self.mic = self._open_mic(self._choose(devices, input_device, "input"))
        try:
            self.speaker = self._open_speaker(self._choose(devices, output_device, "output"))
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
        stream = MicStream(device, self.device_rate, on_capture=self.echo.capture if self.echo else None,
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
            if old is not None:
                old.close()
        self._tune_echo()

    def check(self) -> str | None:
        """Called about once a second: a stream that stopped calling back moves to the default
        device. Returns the reason when it did."""
        reasons = []
        for kind, stream in (("input", self.mic), ("output", self.speaker)):
            if stream is None or not stream.stalled():
                continue
            label = "Microphone" if kind == "input" else "Speaker"
            why = stream.error or "stopped delivering audio"
            try:
                devices = list_devices()
                default = find_device(devices, "", kind)
                if default is None:
                    raise AudioUnavailable(f"no {kind} device left")
                if kind == "input":
                    self.mic = self._open_mic(default)
                else:
                    self.speaker = self._open_speaker(default)
                stream.close()
                reasons.append(f"{label} {stream.device.name!r} {why}; switched to {default.name!r}")
            except AudioUnavailable as exc:
                stream.close()
                if kind == "input":
                    self.mic = None
                else:
                    self.speaker = None
                reasons.append(f"{label} {stream.device.name!r} {why} and no other device works: {exc}")
        if reasons:
            self._tune_echo()
            return "; ".join(reasons)
        return None

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
        return frame if frame is not None else np.zeros(FRAME, dtype=np.int16)

    @property
    def input_name(self) -> str:
        return self.mic.device.name if self.mic else ""

    @property
    def output_name(self) -> str:
        return self.speaker.device.name if self.speaker else ""

    def describe(self) -> str:
        parts = [f"mic {self.input_name or 'none'}", f"speaker {self.output_name or 'none'}"]
        rates = {s.rate for s in (self.mic, self.speaker) if s is not None}
        if rates and rates != {48000}:
            parts.append("resampled " + "/".join(f"{r // 1000 if r % 1000 == 0 else r / 1000} kHz"
                                                 for r in sorted(rates)))
        parts.append("echo cancellation " + ("on" if self.echo and not self.echo.failed else "off"))
        return " · ".join(parts)

    def close(self) -> None:
        for stream in (self.mic, self.speaker):
            if stream is not None:
                stream.close()
        self.mic = self.speaker = None
