from __future__ import annotations

import shutil

import pytest

from tests.conftest import require


@pytest.fixture(scope="module")
def pulse():
    """A private PulseAudio server (null sinks for mic and speaker) this process's PortAudio uses
    (as tests/audio's fixture; module-scoped so it ends with these tests)."""
    from tests.pulse import Pulse

    require(shutil.which("pulseaudio") is not None and shutil.which("pacat") is not None,
            "PulseAudio (apt install pulseaudio pulseaudio-utils libasound2-plugins)")
    try:
        import sounddevice  # noqa: F401
    except OSError as exc:
        require(False, f"PortAudio (apt install libportaudio2): {exc}")
    server = Pulse().start()
    server.use_in_process()
    yield server
    server.stop()
