"""Audio devices through PortAudio (sounddevice), with plain errors when there is no audio."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass


class AudioUnavailable(Exception):
    """No PortAudio library or no usable device: the call can still run as text only."""


@dataclass(frozen=True)
class Device:
    """One row of PortAudio's list; frozen, so the UI gets it through the port as it is."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    default_input: bool = False
    default_output: bool = False


def _sounddevice():
    from sandra_tui.audio.quiet import silence_alsa

    silence_alsa()  # before PortAudio starts: its probing of ALSA devices is the noisiest part
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise AudioUnavailable(f"PortAudio is not installed ({exc}); install libportaudio2") from None
    return sounddevice


def _sound_reachable() -> bool:
    """Whether PortAudio could find any device here: a sound card, a sound server's socket, or
    an ALSA configuration of the user's. Starting PortAudio reads all of ALSA's configuration
    (about 24 MB that stay for the life of the process), so a machine with none of these gets
    its empty list without it."""
    if "sounddevice" in sys.modules:
        return True  # already started: asking it costs nothing more
    if any(os.environ.get(name) for name in ("PULSE_SERVER", "PIPEWIRE_REMOTE", "ALSA_CONFIG_PATH")):
        return True
    try:
        with os.scandir("/dev/snd") as cards:
            if any(True for _ in cards):
                return True
    except OSError:
        pass
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    places = (_pulse_socket(), os.path.join(runtime, "pipewire-0"), "/run/pulse/native",
              os.path.expanduser("~/.asoundrc"), "/etc/asound.conf")
    if any(os.path.exists(place) for place in places):
        return True
    if os.path.exists(f"/tmp/jack-{os.getuid()}"):  # a JACK 1 server's sockets
        return True
    try:  # a JACK 2 server's sockets; jack_db-UID is only the registry any client leaves behind
        return any(name.startswith("jack_") and not name.startswith("jack_db") for name in os.listdir("/dev/shm"))
    except OSError:
        return False


def list_devices() -> list[Device]:
    if not _sound_reachable():
        return []
    sd = _sounddevice()
    try:
        raw = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in, default_out = sd.default.device
    except Exception as exc:  # noqa: BLE001 - PortAudio reports many things as generic errors
        raise AudioUnavailable(f"cannot list audio devices: {exc}") from None
    out = []
    for index, info in enumerate(raw):
        out.append(Device(index, info["name"], hostapis[info["hostapi"]]["name"], info["max_input_channels"],
                          info["max_output_channels"], info["default_samplerate"],
                          index == default_in, index == default_out))
    return out


def reinitialize() -> None:
    """Start PortAudio again so it lists the devices the machine has now (it reads them once,
    at start). Every stream of this process must be closed first: they die with it."""
    from sandra_tui.shims.sounddevice import restart_portaudio

    sd = _sounddevice()
    try:
        restart_portaudio(sd)
    except Exception as exc:  # noqa: BLE001 - PortAudio reports every failure its own way
        raise AudioUnavailable(f"cannot restart PortAudio: {exc}") from None


def fresh_devices(timeout_s: float = 20.0) -> list[Device] | None:
    """The devices as a new PortAudio sees them now, or None when that could not be asked.

    PortAudio's list in this process is fixed when it starts (re-reading it would close every
    open stream), so a child process lists them. Slow (a second or two on a busy machine):
    only asked when a stream looks dead. The generous timeout is for a loaded machine; a
    child's ALSA complaints go to /dev/null, not the terminal."""
    try:
        out = subprocess.run([sys.executable, "-m", "sandra_tui.audio.devices"], capture_output=True, text=True,
                             timeout=timeout_s, stdin=subprocess.DEVNULL, env=os.environ.copy())
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return [] if "cannot list" in out.stdout + out.stderr else None
    try:
        return [Device(**d) for d in json.loads(out.stdout)]
    except (ValueError, TypeError):
        return None


def find_device(devices: list[Device], wanted: str, kind: str) -> Device | None:
    """By index or by (part of the) name, among devices that have `kind` (input|output) channels."""
    usable = [d for d in devices if (d.max_input_channels if kind == "input" else d.max_output_channels) > 0]
    if not wanted:
        return next((d for d in usable if (d.default_input if kind == "input" else d.default_output)),
                    usable[0] if usable else None)
    if wanted.isdigit():
        return next((d for d in usable if d.index == int(wanted)), None)
    lowered = wanted.lower()
    return next((d for d in usable if d.name.lower() == lowered), None) or \
        next((d for d in usable if lowered in d.name.lower()), None)


def _pulse_socket() -> str:
    server = os.environ.get("PULSE_SERVER", "")
    if server.startswith("unix:"):
        return server[5:]
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return os.path.join(runtime, "pulse", "native")


def sound_server() -> str:
    """Whether a PulseAudio (or PipeWire's pulse) server answers, in a few words."""
    server = os.environ.get("PULSE_SERVER", "")
    if server and not server.startswith("unix:"):
        return f"PulseAudio at {server} (not checked)"
    path = _pulse_socket()
    if not os.path.exists(path):
        return f"PulseAudio is not running (no socket at {path})"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        return f"PulseAudio is not running ({path}: {exc.strerror or exc})"
    finally:
        probe.close()
    return f"PulseAudio is running ({path})"


def why_no_devices() -> str:
    """Why the device list is empty: what PortAudio can reach, what is missing, what to do."""
    cards = "/proc/asound/cards"
    try:
        with open(cards, encoding="utf-8") as f:
            text = f.read()
        alsa = "ALSA has no sound card" if "no soundcards" in text or not text.strip() else "ALSA lists a card"
    except OSError:
        alsa = f"ALSA has no sound card ({cards} is missing)"
    server = sound_server()
    hint = "start PulseAudio or PipeWire" if "not running" in server else "plug in a device"
    return f"{server}; {alsa}. To fix: {hint}, then rescan"


def run_cli(args: argparse.Namespace) -> int:
    """Text and --json agree: exit 1 with the reason on stderr when there is nothing to use
    (--json still prints its list, [] then, so a script can parse stdout either way)."""
    try:
        devices = list_devices()
    except AudioUnavailable as exc:
        if args.json:
            print("[]")
        print(f"sandra-tui devices: {exc}. Calls still work as text only.", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([asdict(d) for d in devices], indent=2))
    if not devices:
        print(f"sandra-tui devices: no audio devices found: {why_no_devices()} (F8, Ctrl+R in the app). "
              "Calls still work as text only.", file=sys.stderr)
        return 1
    if args.json:
        return 0
    for d in devices:
        marks = ("in" if d.max_input_channels else "  ") + ("/out" if d.max_output_channels else "    ")
        default = " (default input)" if d.default_input else ""
        default += " (default output)" if d.default_output else ""
        print(f"{d.index:>3}  {marks}  {d.name} [{d.hostapi}]{default}")
    return 0


if __name__ == "__main__":  # fresh_devices() runs this in a child process
    from sandra_tui.audio.quiet import silence_alsa

    silence_alsa()
    try:
        print(json.dumps([asdict(d) for d in list_devices()]))
    except AudioUnavailable as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
