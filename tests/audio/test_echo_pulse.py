"""Echo cancellation on real devices: Sandra's voice goes out the speaker sink and comes back
into the microphone sink through a PulseAudio loopback (a laptop on speakers); what the
microphone sends is measured with the canceller on and off."""

import time

import numpy as np

from sandra_tui.audio.device_audio import DeviceAudio
from sandra_tui.audio.playout import FRAME
from tests.pulse import speech_like


def echo_level_db(echo_cancellation: bool, seconds: float = 6.0) -> tuple[float, float]:
    """(dBFS of what the mic sends in the last half, dBFS of what was played)."""
    d = DeviceAudio(echo_cancellation=echo_cancellation)
    try:
        far = speech_like(seconds, amplitude=12000)
        sent = []
        start = time.monotonic()
        for n, i in enumerate(range(0, len(far) - FRAME + 1, FRAME)):  # Sandra's voice, in real time
            d.playout.push(far[i : i + FRAME], i)
            sent.append(d.read())
            time.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))
        tail = np.concatenate(sent[len(sent) // 2 :]).astype(np.float64)
        return 10 * np.log10(np.mean(tail**2) / 32768**2 + 1e-12), \
            10 * np.log10(np.mean(far.astype(np.float64) ** 2) / 32768**2)
    finally:
        d.close()


def test_echo_canceller_removes_most_of_the_echo(pulse, acoustic_loop):
    without, played = echo_level_db(False)
    with_aec, _ = echo_level_db(True)
    reduction = without - with_aec
    print(f"played {played:.1f} dBFS; echo at the mic {without:.1f} dBFS without, {with_aec:.1f} dBFS with "
          f"echo cancellation: {reduction:.1f} dB less")
    assert without > played - 12  # the loop really brings the voice back
    assert reduction > 20
