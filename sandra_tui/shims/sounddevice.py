"""sounddevice internals, used here only (tests/shims/test_sounddevice_contract.py checks them).

PortAudio reads the machine's device list once, in Pa_Initialize, which `import sounddevice`
calls. A headset plugged in later is not listed until PortAudio is terminated and initialised
again; sounddevice has no public call for that, only its private `_terminate` and
`_initialize` (which keep its `_initialized` count right, and its own atexit hook balanced).
Pa_Terminate closes every stream of the process: callers close theirs first.
"""

from __future__ import annotations


def version(sd) -> str:
    return getattr(sd, "__version__", "?")


def restart_portaudio(sd) -> None:
    """Terminate and initialise PortAudio once more: the device list is read again."""
    sd._terminate()
    sd._initialize()
