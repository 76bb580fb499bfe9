"""Keep C audio libraries off the terminal: a TUI draws on it, and ALSA ("pcm.c: underrun
occurred", "cannot find card"), PortAudio ("Expression ... failed") and libpulse write their
complaints straight to fd 2, over the screen.

- `silence_alsa()`: ALSA's error handler (snd_lib_error_set_handler) sends its messages to
  our log instead. Covers everything ALSA and its plugins report through SNDERR.
- `stderr_to_log(path)`: PortAudio prints with fprintf(stderr) and has no hook in Debian's
  build, so the only cure is fd 2 itself: it is pointed at the log file, and Python's own
  stderr (which Textual draws on) moves to a copy of the terminal's fd first.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import logging
import os
import sys

log = logging.getLogger("sandra_tui.audio.alsa")

# void (*)(const char *file, int line, const char *function, int err, const char *fmt, ...):
# the variadic tail is left off; on the x86-64 and arm64 C conventions the caller cleans up.
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)
_installed = None  # the ctypes callback; kept alive for as long as ALSA may call it
messages = 0  # ALSA messages taken off the terminal


def _on_alsa_error(file, line, function, err, fmt) -> None:
    global messages
    messages += 1
    try:
        log.debug("ALSA %s:%d (%s) err=%d %s", (file or b"?").decode(errors="replace"), line,
                  (function or b"?").decode(errors="replace"), err, (fmt or b"").decode(errors="replace"))
    except Exception:  # noqa: BLE001 - never raise into C
        pass


def silence_alsa() -> bool:
    """Route ALSA's error messages to the log (once per process); False without libasound."""
    global _installed
    if _installed is not None:
        return True
    name = ctypes.util.find_library("asound") or "libasound.so.2"
    try:
        lib = ctypes.CDLL(name)
        setter = lib.snd_lib_error_set_handler
    except (OSError, AttributeError):
        return False
    setter.argtypes = [_HANDLER]
    setter.restype = ctypes.c_int
    handler = _HANDLER(_on_alsa_error)
    if setter(handler) != 0:
        return False
    _installed = handler
    return True


@contextlib.contextmanager
def stderr_to_log(path: str | os.PathLike):
    """fd 2 goes to `path` (appended) while inside; sys.stderr and sys.__stderr__ write to the
    terminal through a copy of the old fd 2, so a TUI drawing on them is unaffected."""
    sys.stderr.flush()
    terminal_fd = os.dup(2)
    log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    saved = sys.stderr, sys.__stderr__
    terminal = io.TextIOWrapper(io.FileIO(terminal_fd, "w", closefd=False), encoding=saved[0].encoding,
                                errors="backslashreplace", line_buffering=True)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stderr = sys.__stderr__ = terminal
    try:
        yield terminal
    finally:
        terminal.flush()
        sys.stderr, sys.__stderr__ = saved
        os.dup2(terminal_fd, 2)
        os.close(terminal_fd)
