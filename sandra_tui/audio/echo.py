"""Echo cancellation (and optional noise suppression) with WebRTC's audio processing module,
through LiveKit's Python SDK (`livekit.rtc.AudioProcessingModule`, native, maintained).

The module wants 10 ms blocks: what is played goes in as the far end (`render`), what the
microphone hears goes through `capture` and comes out with the echo removed. Both run on
PortAudio's threads; a lock keeps the two sides from entering the module at once.

Each call normally builds, serializes and parses a protobuf message (about 70 us of Python per
block pair, a third of the cost). The request for a fixed buffer never changes, so
shims/livekit.DirectApm builds it once per direction and only copies samples in and out; the
public API is used when that refuses (another livekit version) or fails (a test checks both
give the same output).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from sandra_tui.shims.livekit import DirectApm

log = logging.getLogger(__name__)

RATE = 48000
BLOCK = RATE // 100  # 10 ms
SILENT_PEAK = 8  # a played block this quiet carries no echo
ECHO_TAIL_BLOCKS = 50  # after 0.5 s of silence from the speaker there is nothing left to cancel


class EchoUnavailable(Exception):
    pass


class _Blocks:
    """Cuts a stream of samples into exact 10 ms blocks."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)

    def feed(self, samples: np.ndarray):
        if not len(self._pending) and not len(samples) % BLOCK:  # whole blocks: no copies
            for start in range(0, len(samples), BLOCK):
                yield samples[start : start + BLOCK]
            return
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = len(data) - len(data) % BLOCK
        self._pending = data[whole:].copy()
        for start in range(0, whole, BLOCK):
            yield data[start : start + BLOCK]


class EchoCanceller:
    def __init__(self, noise_suppression: bool = False, delay_ms: int = 40) -> None:
        try:
            from livekit import rtc
        except Exception as exc:  # noqa: BLE001 - missing wheel or native library
            raise EchoUnavailable(f"echo cancellation is not available ({exc})") from None
        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, noise_suppression=noise_suppression,
                                              high_pass_filter=True, auto_gain_control=False)
        self._lock = threading.Lock()
        try:
            self._direct: DirectApm | None = DirectApm(self._apm, RATE, BLOCK)
        except Exception:  # noqa: BLE001 - LiveKit internals moved: the public API still works
            log.info("echo canceller: LiveKit's direct path is unavailable; using the public API", exc_info=True)
            self._direct = None
        self._render = _Blocks()
        self._capture = _Blocks()
        self.delay_ms = 0
        self.set_delay(delay_ms)
        self.failed = False
        self.noise_suppression = noise_suppression
        self._silent_blocks = ECHO_TAIL_BLOCKS  # the speaker starts silent
        self.skipped = 0  # blocks not processed because the speaker was silent

    @property
    def idle(self) -> bool:
        """Nothing played for a while: no echo to remove, so the module can rest (it costs
        ~0.15 ms a block through LiveKit's FFI, and Sandra is silent most of a call)."""
        return self._silent_blocks >= ECHO_TAIL_BLOCKS and not self.noise_suppression

    def set_delay(self, delay_ms: float) -> None:
        """Time from a sample leaving us for the speaker to it coming back in the microphone."""
        self.delay_ms = int(max(0, min(500, delay_ms)))
        with self._lock:
            self._apm.set_stream_delay_ms(self.delay_ms)

    def render(self, samples: np.ndarray) -> None:
        if self.failed:
            return
        if not len(self._render._pending) and len(samples) == BLOCK:  # the usual 10 ms block
            self._render_block(samples)
            return
        for block in self._render.feed(samples):
            self._render_block(block)

    def _render_block(self, block: np.ndarray) -> None:
        # max and -min, not np.abs: no array made on the speaker's thread
        if max(int(block.max()), -int(block.min())) <= SILENT_PEAK:
            self._silent_blocks += 1
            if self.idle:
                return
        else:
            self._silent_blocks = 0
        self._run("apm_process_reverse_stream", block, keep=False)

    def capture_into(self, samples: np.ndarray) -> np.ndarray:
        """`capture` that writes the cleaned audio over `samples` (the microphone callback's own
        buffer) when it is whole 10 ms blocks: no arrays made. Returns the cleaned samples."""
        if self.failed or self.idle and not len(self._capture._pending):
            if not self.failed:
                self.skipped += 1
            return samples
        if len(self._capture._pending) or len(samples) % BLOCK:
            return self.capture(samples)
        for start in range(0, len(samples), BLOCK):
            block = samples[start : start + BLOCK]
            self._run("apm_process_stream", block, out=block)
        return samples

    def capture(self, samples: np.ndarray) -> np.ndarray:
        """Microphone samples in, the same amount (give or take a block held back) out, cleaned."""
        if self.failed:
            return samples
        if self.idle and not len(self._capture._pending):
            self.skipped += 1
            return samples
        out = []
        for block in self._capture.feed(samples):
            out.append(self._run("apm_process_stream", block))
        if len(out) == 1:
            return out[0]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)

    def _run(self, kind: str, block: np.ndarray, out: np.ndarray | None = None, keep: bool = True):
        """The processed block (a copy, or written into `out`; nothing with keep=False), or the
        block unchanged once the module has failed."""
        try:
            with self._lock:
                if self._direct is not None:
                    result = self._direct.process(kind, block)
                else:
                    frame = self._rtc.AudioFrame(block.tobytes(), RATE, 1, BLOCK)
                    method = self._apm.process_stream if kind == "apm_process_stream" \
                        else self._apm.process_reverse_stream
                    method(frame)
                    result = np.frombuffer(frame.data, dtype=np.int16)
                if not keep:
                    return None
                if out is not None:
                    np.copyto(out, result)
                    return out
                return result.copy()
        except Exception:  # noqa: BLE001 - never break the audio thread; pass audio through instead
            self.failed = True
            log.exception("echo canceller failed; audio passes through unprocessed from now on")
            return block
