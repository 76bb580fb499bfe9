"""C audio libraries stay off the terminal: a process that opens a bad ALSA device and forces an
underrun writes nothing to its fd 2 once `silence_alsa` / `stderr_to_log` are in place."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
import os, sys, time
quiet = sys.argv[1] == "quiet"
if quiet:
    from sandra_tui.audio.quiet import silence_alsa, stderr_to_log
    ctx = stderr_to_log(sys.argv[2])
    ctx.__enter__()
if quiet:
    from sandra_tui.audio.devices import _sounddevice
    sd = _sounddevice()  # PortAudio probes every ALSA device, the bad one included
else:
    import sounddevice as sd  # as it was: no handler
try:
    sd.OutputStream(device="bad", channels=1, samplerate=48000).close()
except Exception:
    pass
def slow(outdata, frames, t, status):  # a callback late enough for an underrun
    outdata[:] = 0
    time.sleep(0.08)
with sd.OutputStream(device="default", channels=1, samplerate=48000, blocksize=480, latency=0.02, callback=slow):
    time.sleep(1.0)
if quiet:
    from sandra_tui.audio import quiet as q
    print("alsa_messages", q.messages, flush=True)
"""


def run(pulse, tmp_path, mode: str) -> subprocess.CompletedProcess:
    (tmp_path / ".asoundrc").write_text("pcm.bad { type hw card 42 }\n")
    env = {**os.environ, **pulse.env, "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", SCRIPT, mode, str(tmp_path / "audio.log")], env=env,
                          capture_output=True, text=True, timeout=60)


def test_alsa_and_portaudio_write_nothing_to_fd_2(pulse, tmp_path):
    loud = run(pulse, tmp_path, "loud")
    assert "ALSA lib" in loud.stderr or "Expression" in loud.stderr  # the test can see what it guards
    quiet = run(pulse, tmp_path, "quiet")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert "alsa_messages" in quiet.stdout and int(quiet.stdout.split()[-1]) > 0  # caught, to the log
