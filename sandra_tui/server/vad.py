"""Voice activity detection configured like OpenAI's turn detection.

A frame is speech when WebRTC's VAD (a Gaussian-mixture model over band energies, the one in
every WebRTC stack; webrtcvad-wheels ships it compiled) says so *and* it is louder than the
level `threshold` asks for: OpenAI documents a higher threshold as "requires louder audio".
The threshold also picks the model's aggressiveness (0.5, the default, is mode 2).

server_vad ends a turn after `silence_duration_ms` of quiet; semantic_vad's `eagerness` is
approximated by the silence it waits for (OpenAI's maximum waits: low 8 s, medium 4 s, high
2 s), shortened to EARLY_END_MS when the words so far already make a request (see `complete`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import webrtcvad

from sandra_tui.media.constants import FRAME_MS
from sandra_tui.media.constants import SAMPLE_RATE as RATE  # webrtcvad takes 48 kHz directly: no resampling per frame
ONSET_FRAMES = 2  # 40 ms of speech before a turn starts: a click is not speech
# While Sandra's own voice may be coming back (her reply playing, and its echo tail), a turn needs
# 300 ms of speech, as LiveKit's min_interruption_duration asks: what an echo canceller leaves of
# her voice comes in bursts of 100-200 ms, and each one cut her off (1 false start in 2 calls).
BARGE_IN_FRAMES = 15
# ...counted across the short pauses inside speech (webrtcvad calls some frames of a word, and
# the breath between two words, non-speech): a run of 300 ms without any would only start at a
# phrase's third word ("check booking five six seven eight" was heard as "seven eight").
ONSET_GAP_FRAMES = 5
MAX_ONSET_SPAN = BARGE_IN_FRAMES * (1 + ONSET_GAP_FRAMES)  # frames an onset can cover, pauses included
EAGERNESS_SILENCE_MS = {"low": 8000, "medium": 4000, "auto": 4000, "high": 2000}
EARLY_END_MS = {"low": 1200, "medium": 700, "auto": 700, "high": 400}


def threshold_dbfs(threshold: float) -> float:
    """Map server_vad's 0..1 threshold onto a level floor: 0.5 -> -40 dBFS, 0 -> -60, 1 -> -20."""
    return -60.0 + 40.0 * min(1.0, max(0.0, threshold))


def aggressiveness(threshold: float) -> int:
    """webrtcvad's mode 0 (lenient) .. 3 (strict) for a 0..1 threshold."""
    return min(3, max(0, int(threshold * 4)))


@dataclass
class VadEvent:
    kind: str  # speech_started | speech_stopped
    ms: int  # audio_start_ms / audio_end_ms on the input audio clock


class Vad:
    def __init__(self, threshold: float = 0.5, prefix_padding_ms: int = 300, silence_duration_ms: int = 500) -> None:
        self._model = webrtcvad.Vad()
        self.eagerness: str | None = None  # set for semantic_vad
        self.configure(threshold, prefix_padding_ms, silence_duration_ms)
        self.clock_ms = 0
        self.speaking = False
        self.complete = False  # the agent sets it when the partial transcript is a whole request
        self._loud_run = 0
        self._quiet_ms = 0
        self.speech_start_ms = 0
        self.onset_frames = ONSET_FRAMES  # the agent raises it while its reply plays (barge-in)
        self.onset_span = 0  # frames from the onset's first speech frame to the one that started the turn
        self._gap = 0

    def configure(self, threshold: float, prefix_padding_ms: int, silence_duration_ms: int,
                  eagerness: str | None = None) -> None:
        self.threshold = threshold
        self.level = threshold_dbfs(threshold)
        self._model.set_mode(aggressiveness(threshold))
        self.prefix_padding_ms = prefix_padding_ms
        self.eagerness = eagerness
        if eagerness is not None:
            silence_duration_ms = EAGERNESS_SILENCE_MS.get(eagerness, 4000)
        self.silence_duration_ms = max(FRAME_MS, silence_duration_ms)

    def configure_turn(self, td: dict) -> None:
        """From a session's complete turn_detection object."""
        if td.get("type") == "semantic_vad":
            self.configure(0.5, 300, 0, td.get("eagerness") or "auto")
        else:
            self.configure(float(td["threshold"]), int(td["prefix_padding_ms"]), int(td["silence_duration_ms"]))

    def reset(self) -> None:
        """Forget a turn in progress (input_audio_buffer.clear / commit); the clock keeps running."""
        self.speaking = False
        self.complete = False
        self._loud_run = 0
        self._quiet_ms = 0
        self._gap = self.onset_span = 0

    def is_speech(self, samples: np.ndarray) -> bool:
        if len(samples) != RATE * FRAME_MS // 1000:
            return False
        x = samples.astype(np.float32)
        rms = float(np.sqrt(np.mean(x * x))) / 32768.0
        if rms <= 0 or 20 * np.log10(rms) <= self.level:
            return False  # too quiet for this threshold: the model need not run
        return self._model.is_speech(samples.astype(np.int16, copy=False).tobytes(), RATE)

    def _silence_needed(self) -> int:
        if self.eagerness is not None and self.complete:
            return EARLY_END_MS.get(self.eagerness, 700)
        return self.silence_duration_ms

    def feed(self, samples: np.ndarray) -> VadEvent | None:
        """One 20 ms frame of int16 mono at 48 kHz."""
        self.clock_ms += FRAME_MS
        speech = self.is_speech(samples)
        if not self.speaking:
            max_gap = ONSET_GAP_FRAMES if self.onset_frames > ONSET_FRAMES else 0
            if speech:
                self._loud_run += 1
                self._gap = 0
            elif self._loud_run:
                self._gap += 1
                if self._gap > max_gap:
                    self._loud_run = self._gap = self.onset_span = 0
            if self._loud_run:
                self.onset_span += 1
            if self._loud_run >= self.onset_frames:
                self.speaking = True
                self.complete = False
                self._quiet_ms = 0
                self._gap = 0
                self.speech_start_ms = max(0, self.clock_ms - self.onset_span * FRAME_MS - self.prefix_padding_ms)
                return VadEvent("speech_started", self.speech_start_ms)
            return None
        self._quiet_ms = 0 if speech else self._quiet_ms + FRAME_MS
        if self._quiet_ms >= self._silence_needed():
            self.speaking = False
            self._loud_run = self._gap = self.onset_span = 0
            return VadEvent("speech_stopped", self.clock_ms - self._quiet_ms)
        return None

