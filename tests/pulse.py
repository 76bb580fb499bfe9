"""A private PulseAudio server with two null sinks, so sounddevice sees real devices.

- `sandra_mic`: whatever is played into it is the operator's voice; its monitor is the
  default source, so the client's microphone hears it.
- `sandra_spk`: the default sink, where the client's speaker plays; tests record its monitor.

PortAudio (Debian's build has no Pulse host API) reaches the server through ALSA's "pulse"
and "default" devices; PULSE_SERVER points libpulse at this server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MIC_SINK, SPK_SINK = "sandra_mic", "sandra_spk"
ROOM_SINK = "sandra_room"  # tests.conftest.acoustic_loop: plays into the mic sink
RATE = 48000


def speech_like(seconds: float, amplitude: int = 9000) -> np.ndarray:
    """Voiced-sounding audio for the energy VAD: a 180 Hz buzz with syllable-rate swell."""
    t = np.arange(int(RATE * seconds)) / RATE
    buzz = np.sign(np.sin(2 * np.pi * 180 * t)) * 0.6 + np.sin(2 * np.pi * 360 * t) * 0.4
    swell = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (buzz * swell * amplitude).astype(np.int16)


class Pulse:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sandra-pulse-"))
        self.socket = self.dir / "native"
        self.proc: subprocess.Popen | None = None
        self.env = {"PULSE_SERVER": f"unix:{self.socket}", "XDG_RUNTIME_DIR": str(self.dir),
                    "PULSE_RUNTIME_PATH": str(self.dir), "HOME": str(self.dir),
                    "PULSE_STATE_PATH": str(self.dir / "state")}

    def start(self) -> "Pulse":
        args = ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
                "--disable-shm=yes", "--log-target=file:" + str(self.dir / "pulse.log"),
                f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
                f"--load=module-null-sink sink_name={MIC_SINK} rate={RATE} channels=1",
                f"--load=module-null-sink sink_name={SPK_SINK} rate={RATE} channels=1",
                "--load=module-always-sink"]
        if os.geteuid() == 0:
            args.append("--system=no")
        self.proc = subprocess.Popen(args, env={**os.environ, **self.env}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {self.log_tail()}")
            if self.socket.exists() and self.pactl("info", check=False).returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"pulseaudio did not start: {self.log_tail()}")
        self.pactl("set-default-sink", SPK_SINK)
        self.pactl("set-default-source", f"{MIC_SINK}.monitor")
        # A null sink with nothing playing renders in seconds-long chunks, so its monitor (our
        # "microphone") would deliver nothing for long stretches. A real device never goes
        # quiet like that: keep both sinks clocked with a stream of silence.
        self.keepalive = [subprocess.Popen(
            ["pacat", "--playback", "-d", sink, "--raw", "--format=s16le", f"--rate={RATE}", "--channels=1",
             "--latency-msec=10", "/dev/zero"], env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for sink in (MIC_SINK, SPK_SINK)]
        return self

    def log_tail(self) -> str:
        path = self.dir / "pulse.log"
        return path.read_text()[-800:] if path.exists() else "(no log)"

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env={**os.environ, **self.env}, capture_output=True, text=True,
                              check=check, timeout=10)

    def use_in_process(self) -> None:
        """Point this process's libpulse at the server and make PortAudio list its devices again."""
        os.environ.update(self.env)
        import sounddevice as sd

        sd._terminate()
        sd._initialize()
        self.wait_capture_ready(sd)

    def wait_capture_ready(self, sd, timeout: float = 10.0) -> None:
        """The first capture streams after the server starts may get one block and stall;
        wait until a fresh one flows (20 blocks in 0.5 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            blocks = []
            with sd.InputStream(device="default", samplerate=RATE, channels=1, dtype="int16", blocksize=480,
                                latency=0.02, callback=lambda *a: blocks.append(1)):
                time.sleep(0.5)
            if len(blocks) >= 20:
                return
        raise RuntimeError(f"PulseAudio capture never started flowing: {self.log_tail()}")

    def stop(self) -> None:
        for proc in getattr(self, "keepalive", []):
            proc.kill()
            proc.wait()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- playing into the microphone and recording the speaker ---------------------------------
    def play_into_mic(self, samples: np.ndarray, latency_ms: int = 20) -> subprocess.Popen:
        """Play mono int16 48 kHz samples into the mic sink (returns at once; wait() the result).
        A larger `latency_ms` lets the player ride out a busy CPU without gaps (the voice of a
        person, who is not slowed by the machine)."""
        proc = subprocess.Popen(["pacat", "--playback", "-d", MIC_SINK, "--raw", "--format=s16le",
                                 f"--rate={RATE}", "--channels=1", f"--latency-msec={latency_ms}"],
                                env={**os.environ, **self.env}, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def feed() -> None:
            try:
                proc.stdin.write(np.asarray(samples, dtype=np.int16).tobytes())
                proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass

        threading.Thread(target=feed, daemon=True).start()
        return proc

    def recorder(self, source: str = f"{SPK_SINK}.monitor") -> "Recorder":
        return Recorder(self, source)


class Recorder:
    """Records a Pulse source continuously. Each chunk's time is its place in the sample stream
    (samples before it / RATE) on the clock of the earliest arrival seen: on a loaded machine the
    reader (parec, then this thread) runs late and a chunk stamped on arrival is stamped with the
    measuring tool's lateness (barge-in read 130 ms at load average 8 where the sample clock says
    the speaker was silent sooner). The pipe holds what is late, so no sample is lost to it."""

    CHUNK = 480  # 10 ms

    def __init__(self, pulse: Pulse, source: str) -> None:
        self._proc = subprocess.Popen(["parec", "-d", source, "--raw", "--format=s16le", f"--rate={RATE}",
                                       "--channels=1", "--latency-msec=10"],
                                      env={**os.environ, **pulse.env}, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL)
        self._raw: list[tuple[int, np.ndarray]] = []  # (samples before the chunk, chunk)
        self._origin = float("inf")  # monotonic time of sample 0: min over chunks of arrival - position
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        size = self.CHUNK * 2
        position = 0
        while True:
            data = self._proc.stdout.read(size)
            if not data:
                return
            chunk = np.frombuffer(data, dtype=np.int16)
            position_s = position / RATE
            self._origin = min(self._origin, time.monotonic() - position_s)
            self._raw.append((position, chunk))
            position += len(chunk)

    @property
    def chunks(self) -> list[tuple[float, np.ndarray]]:
        origin = self._origin
        return [(origin + position / RATE, chunk) for position, chunk in list(self._raw)]

    def since(self, t0: float) -> np.ndarray:
        parts = [c for t, c in self.chunks if t >= t0]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def loud_times(self, threshold_dbfs: float = -40.0) -> list[float]:
        limit = 32768 * 10 ** (threshold_dbfs / 20)
        return [t for t, c in self.chunks if len(c) and np.abs(c.astype(np.int32)).max() > limit]

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._thread.join(2)
