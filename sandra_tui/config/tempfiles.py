"""The config's atomic write and the clean-up of what a killed write leaves behind.

A save writes `.<name>.<16 hex>.tmp` beside the file (0600 from its creation, before a byte of
it is written: it holds the TURN credentials), fsyncs it and renames it over the file. An error
anywhere removes the temp file; a SIGKILL cannot, so loading the config removes temp files of
ours older than STALE_AFTER_S (a younger one may be another process's save in progress).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import time
from pathlib import Path

STALE_AFTER_S = 60.0
SUFFIX = ".tmp"

log = logging.getLogger("sandra_tui.config")


def temp_name_pattern(target: Path) -> re.Pattern[str]:
    # 16 hex: ours; 8 of [a-z0-9_]: tempfile.mkstemp's, which the saves of earlier versions used.
    return re.compile(rf"\.{re.escape(target.name)}\.(?:[0-9a-f]{{16}}|[a-z0-9_]{{8}}){re.escape(SUFFIX)}")


def write_private(target: Path, body: bytes) -> None:
    """Write `body` to `target` atomically: temp file (0600), fsync, rename, fsync the folder."""
    tmp = target.with_name(f".{target.name}.{os.urandom(8).hex()}{SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask, while the file is still empty
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temps(target: Path, max_age_s: float = STALE_AFTER_S) -> list[str]:
    """Remove our own temp files beside `target` older than `max_age_s`; return their names.

    Only regular files of this user whose name is exactly our pattern: nothing else is touched."""
    pattern = temp_name_pattern(target)
    now = time.time()
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:  # no folder yet, or not ours to read: nothing of ours is there
        return []
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or now - info.st_mtime < max_age_s:
                continue
            os.unlink(entry.path)
        except OSError:  # gone already (another process cleaned it) or not removable: leave it
            continue
        removed.append(entry.name)
    if removed:
        log.warning("removed %d stale temp file(s) left in %s by interrupted config saves: %s",
                    len(removed), target.parent, ", ".join(sorted(removed)))
    return removed
