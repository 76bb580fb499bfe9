"""What a failed import at start-up means, in words an operator can act on.

cli.py imports each sub-command's code when it runs; when that (or an import the command makes
later) fails, this says which: a Python package missing, a system library missing (PortAudio,
libopus, FFmpeg's), or a bug in our own code. Imported only on that failure path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MISSING_DEPENDENCY = 3  # a library we need is not installed or cannot load
BROKEN_MODULE = 4  # our own code failed to import: a bug, or a broken install

# Python package (top-level module) -> what pip installs it, where the two differ
PIP_NAMES = {"webrtcvad": "webrtcvad-wheels", "tomli_w": "tomli-w", "pydantic_settings": "pydantic-settings",
             "prometheus_client": "prometheus-client", "_sounddevice": "sounddevice"}
# shared library (as a loader message names it) -> (what it is, how to install it)
SYSTEM_LIBRARIES = [
    (re.compile(r"(?i)portaudio"), "the PortAudio library (audio devices)", "sudo apt-get install libportaudio2"),
    (re.compile(r"(?i)libopus"), "the Opus codec library (libopus)", "sudo apt-get install libopus0"),
    (re.compile(r"(?i)libasound"), "ALSA's library (libasound)", "sudo apt-get install libasound2"),
    (re.compile(r"(?i)libpulse"), "PulseAudio's client library (libpulse)", "sudo apt-get install libpulse0"),
    (re.compile(r"(?i)espeak"), "espeak-ng (the local agent's voice)", "sudo apt-get install espeak-ng"),
    (re.compile(r"(?i)lib(?:av|sw)[a-z]+"), "FFmpeg's libraries",
     "pip install --force-reinstall av  (its wheel bundles them)"),
]
_SHARED_OBJECT = re.compile(r"(lib[\w.+-]*?\.so[\w.]*)")


@dataclass
class ImportFailure:
    code: int
    message: str  # for stderr: what failed, why, and what to do


def _frames(exc: BaseException) -> list[tuple[str, str, int, str]]:
    """(module, file, line, function) of every frame `exc` passed through, outermost first."""
    out = []
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        out.append((frame.f_globals.get("__name__") or "", frame.f_code.co_filename, tb.tb_lineno,
                    frame.f_code.co_name))
        tb = tb.tb_next
    return out


def _ours(module: str) -> bool:
    return module == "sandra_tui" or module.startswith("sandra_tui.")


def raised_by_import(exc: BaseException) -> bool:
    """True for an ImportError, or an exception that came out of a module's top-level code
    (an import) rather than out of a function the command called."""
    return isinstance(exc, ImportError) or any(f[3] == "<module>" for f in _frames(exc)[1:])


def _system_library(text: str) -> tuple[str, str] | None:
    for pattern, what, hint in SYSTEM_LIBRARIES:
        if pattern.search(text):
            return what, hint
    found = _SHARED_OBJECT.search(text)
    if found:
        return f"the system library {found.group(1)}", "install the system package that provides it"
    return None


def describe(exc: BaseException, command: str) -> ImportFailure:
    """The report for an ImportError, or an OSError raised while importing."""
    frames = [f for f in _frames(exc) if f[0] not in ("sandra_tui.cli", "importlib") and f[0]]
    # The module at fault: the one an ImportError names, else the one whose code raised.
    culprit = getattr(exc, "name", None) or (frames[-1][0] if frames else "")
    library = culprit.split(".")[0]
    importer = next((f for f in reversed(frames) if _ours(f[0]) and f[0] != culprit), None)
    needed_by = f" (imported by {importer[0]}, line {importer[2]})" if importer else ""
    head = f"sandra-tui {command}: cannot start:"
    detail = f"{type(exc).__name__}: {exc}"
    system = None if isinstance(exc, ModuleNotFoundError) else _system_library(str(exc))
    if system:  # whoever loads it (a package, or our own ctypes code)
        what, hint = system
        via = f" (for the Python package '{library}')" if library and not _ours(library) else ""
        return ImportFailure(MISSING_DEPENDENCY, f"{head} {what} is missing or cannot be "
                                                 f"loaded{via}{needed_by}: {detail}\n  install it: {hint}")
    if library and not _ours(library):
        pip = PIP_NAMES.get(library, library.replace("_", "-"))
        if isinstance(exc, ModuleNotFoundError):
            state, todo = "is not installed", f"install it: pip install {pip} (or reinstall sandra-tui)"
        else:
            state, todo = "cannot be imported", f"a wrong version? pip install --force-reinstall {pip}"
        return ImportFailure(MISSING_DEPENDENCY, f"{head} the Python package '{library}' {state}{needed_by}: "
                                                 f"{detail}\n  {todo}")
    place = next((f for f in reversed(frames) if _ours(f[0])), None)
    where = f"{place[0]} ({place[1]}:{place[2]})" if place else (culprit or "a module of sandra-tui")
    return ImportFailure(BROKEN_MODULE, f"{head} importing {where} failed: {detail}\n"
                                        "  a bug in sandra-tui or a broken install "
                                        "(--log-level DEBUG prints the traceback)")
