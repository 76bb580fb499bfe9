"""The media format of every call leg, client and agent: 48 kHz mono int16 in 20 ms frames
(Opus's clock and the frame WebRTC sends). Defined here once; the ASR's 16 kHz and the echo
canceller's 10 ms block are their own modules' business."""

from __future__ import annotations

import fractions

SAMPLE_RATE = 48000  # Hz; also the Opus RTP clock
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 960
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)  # pts unit of every frame and packet
