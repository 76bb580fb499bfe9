"""The numpy RTP audio level gives aiortc's own figures."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sandra_tui.protocol import audio_level
from sandra_tui.protocol.opus import make_frame


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 32767), st.integers(0, 2**32 - 1))
def test_same_level_as_aiortc(amplitude, seed):
    rng = np.random.default_rng(seed)
    samples = (rng.uniform(-1, 1, 960) * amplitude).astype(np.int16)
    frame = make_frame(samples, 0)
    assert audio_level.audio_level_dbov(frame) == audio_level._original(frame)


def test_installed_for_the_sender():
    from aiortc import rtp

    audio_level.install()
    assert rtp.compute_audio_level_dbov is audio_level.audio_level_dbov
