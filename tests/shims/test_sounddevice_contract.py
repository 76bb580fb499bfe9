"""The sounddevice internals sandra_tui/shims/sounddevice.py relies on. A failure here names the
version: the shim must be revisited before sounddevice is upgraded."""

from sandra_tui.shims import sounddevice as shim
from tests.conftest import require


def _sd():
    try:
        import sounddevice
    except OSError as exc:
        require(False, f"PortAudio (apt install libportaudio2): {exc}")
    return sounddevice


def test_restart_keeps_portaudio_initialised_once_and_usable():
    sd = _sd()
    who = f"sounddevice {shim.version(sd)}"
    assert callable(getattr(sd, "_terminate", None)), f"{who}: sounddevice._terminate is gone"
    assert callable(getattr(sd, "_initialize", None)), f"{who}: sounddevice._initialize is gone"
    count = getattr(sd, "_initialized", None)
    assert isinstance(count, int) and count >= 1, f"{who}: sounddevice._initialized no longer counts"
    shim.restart_portaudio(sd)
    shim.restart_portaudio(sd)
    assert sd._initialized == count, f"{who}: a restart no longer balances _initialized"
    sd.query_devices()  # PortAudio answers after the restart
    sd.query_hostapis()
