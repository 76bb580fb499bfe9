"""serve's watch on its client (server/main.ParentWatch) works while the event loop is held:
on a loaded machine the loop can be busy for a second or more, and an agent that only noticed
its client's end there outlived a SIGKILLed client by over 2 s (tests/call/test_exits.py)."""

from __future__ import annotations

import asyncio
import os
import time

from sandra_tui.server.main import PARENT_GONE, STDIN_CLOSED, ParentWatch


async def _held_loop_sees(close_what: str) -> tuple[float, list[str], float]:
    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    orphaned: list[float] = []
    stops: list[str] = []
    parent = os.getppid() if close_what == "stdin" else -1  # -1: "our parent changed" at once
    watch = ParentWatch(loop, stops.append, lambda: orphaned.append(time.monotonic()), parent, fd=r).start()
    try:
        assert watch.watching_stdin  # a pipe is watched
        t0 = time.monotonic()
        if close_what == "stdin":
            os.close(w)
            w = -1
        time.sleep(1.0)  # the loop is held: nothing on it runs meanwhile
        held_until = time.monotonic()
        await asyncio.sleep(0.2)  # now the loop runs what the watch asked of it
        return (orphaned[0] - t0 if orphaned else -1.0), stops, held_until - t0
    finally:
        watch.close()
        os.close(r)
        if w >= 0:
            os.close(w)


async def test_the_end_of_stdin_is_seen_while_the_loop_is_held():
    seen_after, stops, held = await _held_loop_sees("stdin")
    # Seen by the thread within its poll period plus scheduling, well inside the 1 s hold.
    assert 0 <= seen_after < held, (seen_after, held)
    assert stops == [STDIN_CLOSED]


async def test_a_new_parent_is_seen_while_the_loop_is_held():
    seen_after, stops, held = await _held_loop_sees("parent")
    assert 0 <= seen_after < held, (seen_after, held)
    assert stops == [PARENT_GONE]


def test_a_regular_file_or_dev_null_is_not_watched(tmp_path):
    path = tmp_path / "f"
    path.write_text("")
    for name in (str(path), os.devnull):
        fd = os.open(name, os.O_RDONLY)
        try:
            watch = ParentWatch(asyncio.new_event_loop(), lambda _r: None, lambda: None, os.getppid(), fd=fd)
            assert not watch.watching_stdin, name  # it reads as EOF at once: PDEATHSIG only
            watch.loop.close()
        finally:
            os.close(fd)
