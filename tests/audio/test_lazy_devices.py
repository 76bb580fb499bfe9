"""What a call that goes text only never loads (issue #21: the TUI's RSS over headless).

Starting PortAudio reads all of ALSA's configuration (about 24 MB that stay); livekit's echo
canceller maps its FFI library (about 19 MB). Neither is wanted where there is no device."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandra_tui.audio import device_audio
from sandra_tui.audio.devices import AudioUnavailable, Device

CHILD = """
import json, sys
from sandra_tui.audio.devices import _sound_reachable, list_devices
reachable = _sound_reachable()
devices = list_devices()
print(json.dumps({"reachable": reachable, "devices": len(devices), "portaudio": "sounddevice" in sys.modules}))
"""


def child(tmp_path, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("PULSE_SERVER", "PIPEWIRE_REMOTE", "ALSA_CONFIG_PATH")}
    clean.update(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path), **env)
    out = subprocess.run([sys.executable, "-c", CHILD], env=clean, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_portaudio_starts_only_where_a_device_could_be(tmp_path) -> None:
    seen = child(tmp_path)
    assert seen["portaudio"] == seen["reachable"]
    if not seen["reachable"]:  # no card, no sound server, no ALSA file of the user's
        assert seen["devices"] == 0


def test_a_sound_server_named_in_the_environment_counts(tmp_path) -> None:
    seen = child(tmp_path, PULSE_SERVER=f"unix:{tmp_path}/no-such-socket")
    assert seen["reachable"] and seen["portaudio"]  # asked: PortAudio then says what it finds


MIC = Device(0, "mic", "ALSA", 1, 0, 48000.0, default_input=True)
SPEAKER = Device(1, "speaker", "ALSA", 0, 2, 48000.0, default_output=True)


@pytest.mark.parametrize("found", [[], [MIC], [SPEAKER]], ids=["none", "mic only", "speaker only"])
def test_no_echo_canceller_until_both_devices_are_found(monkeypatch, found) -> None:
    made = []
    monkeypatch.setattr(device_audio, "list_devices", lambda: list(found))
    monkeypatch.setattr(device_audio, "EchoCanceller", lambda **kw: made.append(kw))
    opened = []
    monkeypatch.setattr(device_audio.DeviceAudio, "_open_mic", lambda self, d: opened.append(d))
    with pytest.raises(AudioUnavailable, match="no audio (input|output) device found"):
        device_audio.DeviceAudio()
    assert made == [] and opened == []
