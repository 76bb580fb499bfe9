"""The echo canceller's fixed-buffer path into LiveKit gives exactly what the public API gives."""

from __future__ import annotations

import numpy as np

from sandra_tui.audio.echo import BLOCK, EchoCanceller
from tests.pulse import speech_like


def _run(canceller: EchoCanceller, far: np.ndarray, near: np.ndarray) -> np.ndarray:
    out = []
    for start in range(0, len(far) - BLOCK + 1, BLOCK):
        canceller.render(far[start : start + BLOCK])
        out.append(canceller.capture(near[start : start + BLOCK]))
    return np.concatenate(out)


def test_direct_path_matches_the_public_api():
    far = speech_like(3.0)
    echo = (np.concatenate([np.zeros(2400, np.int16), far[:-2400]]) * 0.5).astype(np.int16)  # 50 ms, -6 dB
    direct, public = EchoCanceller(), EchoCanceller()
    assert direct._direct is not None, "LiveKit's internals moved: the direct path fell back"
    public._direct = None
    a, b = _run(direct, far, echo), _run(public, far, echo)
    assert not direct.failed and not public.failed
    assert len(a) == len(b) == len(far) // BLOCK * BLOCK
    assert np.array_equal(a, b)
    # and it cancels: the last second carries far less echo than went in
    tail = slice(-48000, None)
    def rms(x): return float(np.sqrt(np.mean(x[tail].astype(np.float64) ** 2)))
    assert rms(a) < rms(echo) / 10


def test_a_module_error_passes_audio_through():
    canceller = EchoCanceller()
    canceller._silent_blocks = 0  # the speaker is "playing": capture goes through the module
    canceller._direct._calls["apm_process_stream"] = canceller._direct._calls["apm_process_stream"][:4] + (b"x",)
    block = speech_like(0.01)[:BLOCK]
    out = canceller.capture(block)
    assert canceller.failed
    assert np.array_equal(out, block)
