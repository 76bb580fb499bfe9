"""The telemetry spool against damaged files and a full disk, delivering to a real `sandra-tui serve`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from sandra_tui.call.telemetry_link import SPOOL_NAME
from sandra_tui.telemetry.spool import LEGACY_NAME, Row, SqliteSpool
from sandra_tui.telemetry.uploader import TelemetryUploader
from sandra_tui.telemetry.worker import MAX_BACKOFF_S, TICK_S
from tests.conftest import require
from tests.telemetry.serve import Backend


@pytest.fixture
async def backend():
    b = await Backend().start()
    yield b
    await b.cleanup()


async def until(predicate, timeout: float, what: str, step: float = 0.1):
    """Poll an async or plain predicate; the timeouts are generous because CI may be loaded."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(step)


def uploader(backend: Backend, spool: Path, key: str, session: str, notices: list, **kw) -> TelemetryUploader:
    made: list[str] = []
    up = TelemetryUploader(backend.metrics_url, token=lambda: key, session_id=lambda: session, batch_size=5,
                           flush_interval_s=3600, spool_path=spool, on_notice=notices.append, **kw)
    make = up.payload

    def payload() -> dict:  # remember every payload id made, to check the server's rows against
        p = make()
        made.append(p["payloadId"])
        return p

    up.payload = payload
    up.made_ids = made
    return up


def feed(up: TelemetryUploader, payloads: int) -> None:
    for i in range(payloads * up.batch_size):
        up.record("response_latency", 100.0 + i % 50)


async def stored_ids(backend: Backend, session: str) -> list[str]:
    return [p["payloadId"] for p in await backend.stored(session)]


def damage(kind: str, state: Path) -> None:
    spool = state / SPOOL_NAME
    if kind == "random_bytes":
        spool.write_bytes(b"\x00garbage" + os.urandom(8192))
    elif kind == "truncated_db":
        good = SqliteSpool(spool, 1 << 20)
        good.open()
        good.add([Row(json.dumps({"pad": "x" * 900, "i": i}), "http://127.0.0.1:9/m", "k", "sess_old", time.time())
                  for i in range(300)])
        good.close()
        size = spool.stat().st_size
        assert size > 100_000
        with open(spool, "r+b") as handle:
            handle.truncate(size // 2)  # the header still says SQLite, half the pages are gone
    elif kind == "jsonl_bad_byte":
        lines = [json.dumps({"type": "realtime_latency", "sessionId": "sess_old", "payloadId": f"old{i}",
                             "timestamp": "2020-01-01T00:00:00.000Z"}).encode() for i in range(3)]
        lines.insert(1, b'{"type": "realtime_latency", "sessionId": "sess_\xff"}')
        (state / LEGACY_NAME).write_bytes(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize("kind", ["random_bytes", "truncated_db", "jsonl_bad_byte"])
async def test_damaged_spool_is_moved_aside_with_one_notice_and_later_payloads_are_delivered(tmp_path, backend, kind):
    state = tmp_path / "state"
    state.mkdir()
    damage(kind, state)
    key, session = await backend.token()
    notices: list[str] = []
    up = uploader(backend, state / SPOOL_NAME, key, session, notices)
    up.start()
    try:
        feed(up, 10)
        await until(lambda: stored_ids(backend, session), 20, "payloads stored")
        await until(lambda: len(up.made_ids) == 10 and up.sent >= 10, 20, "all ten sent")
    finally:
        await up.close(deadline_s=2.0)
    assert sorted(await stored_ids(backend, session)) == sorted(up.made_ids)  # every one, once
    counts = up.counts()
    assert counts["made"] == 10 and counts["sent"] == 10 and counts["duplicates"] == 0 and counts["lost"] == 0
    assert len(notices) == 1 and "moved aside" in notices[0], notices
    aside = sorted(p.name for p in state.iterdir() if ".corrupt-" in p.name)
    if kind == "jsonl_bad_byte":
        assert not (state / LEGACY_NAME).exists()
        assert [n.split(".corrupt-")[0] for n in aside] == [LEGACY_NAME]
        # The good old lines were kept; their key was never stored, so they wait for one of their session.
        assert up.outbox.spool.imported == 3 and up.outbox.spool.skipped_lines == 1
    else:
        assert any(n.startswith(SPOOL_NAME + ".corrupt-") and not n.endswith(("-wal", "-shm")) for n in aside), aside
    # The fresh spool is a sound database the next run opens without a notice.
    again: list[str] = []
    second = uploader(backend, state / SPOOL_NAME, key, session, again)
    second.start()
    await second.close(deadline_s=1.0)
    assert again == []


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    require(os.geteuid() == 0, "root, to mount a tmpfs for the full-disk test")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem says ENOSPC."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            for _ in range(100_000):  # bounded: 400 MB at most, far beyond any tmpfs here
                handle.write(b"\xaa" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


# 512 KiB rather than 64 KiB: SQLite in WAL mode keeps a 32 KiB shared-memory index beside the
# file, so 64 KiB would be full before the first row. The test fills the rest anyway.
TMPFS_SIZE = "512k"


async def test_full_disk_degrades_to_memory_with_one_notice_and_everything_is_delivered(tmp_path, backend):
    with tmpfs(tmp_path / "state", TMPFS_SIZE) as state:
        key, session = await backend.token()
        await backend.stop()  # the backend is unreachable too: everything has to wait somewhere
        notices: list[str] = []
        up = uploader(backend, state / SPOOL_NAME, key, session, notices)
        up.start()
        filler = None
        try:
            feed(up, 4)
            await until(lambda: len(up.outbox) == 4, 10, "four payloads on disk")
            filler = fill(state)
            for _ in range(400):  # SQLite reuses its WAL's space for a while before it needs more
                feed(up, 1)
                await asyncio.sleep(0.01)
                if not up.outbox.on_disk:
                    break
            await until(lambda: not up.outbox.on_disk, 10, "the memory queue")
            feed(up, 20)  # more while the disk is still full: no second notice
            await until(lambda: len(up.outbox.memory) >= 20, 10, "payloads in memory")
            assert len(notices) == 1 and "full" in notices[0], notices
            filler.unlink()  # room again: the memory queue goes back to the spool
            await until(lambda: up.outbox.on_disk and not up.outbox.memory, TICK_S * 4, "back on disk")
            await backend.start()
            restarted = time.monotonic()
            await until(lambda: up.sent == len(up.made_ids), 30, "all delivered")
            delivered_after = time.monotonic() - restarted
        finally:
            await up.close(deadline_s=2.0)
        ids = await stored_ids(backend, session)
        assert sorted(ids) == sorted(up.made_ids)  # none lost, none twice
        counts = up.counts()
        assert counts["duplicates"] == 0 and counts["lost"] == 0 and counts["rejected"] == 0, counts
        assert len(notices) == 1
        # The cap of the backoff bounds this; the slack covers a loaded machine.
        assert delivered_after < MAX_BACKOFF_S + 6, delivered_after
        print(f"full disk: made={counts['made']} stored={len(ids)} delivered {delivered_after:.2f} s after restart, "
              f"close {up.close_seconds:.3f} s")


async def test_disk_full_from_the_start_sends_from_memory_and_close_never_raises(tmp_path, backend):
    with tmpfs(tmp_path / "state", TMPFS_SIZE) as state:
        fill(state)  # not even the spool file can be created
        key, session = await backend.token()
        notices: list[str] = []
        up = uploader(backend, state / SPOOL_NAME, key, session, notices)
        up.start()
        feed(up, 6)
        await until(lambda: up.sent == 6, 20, "six sent from memory")
        assert len(notices) == 1 and ("full" in notices[0] or "cannot be written" in notices[0]), notices
        await backend.stop()
        feed(up, 3)  # nowhere to keep these: no disk, no backend
        started = time.monotonic()
        await up.close(deadline_s=2.0)  # must not raise
        took = time.monotonic() - started
        counts = up.counts()
        assert counts["lost"] == 3 and counts["sent"] == 6 and counts["duplicates"] == 0, counts
        assert len(notices) == 1
        await backend.start()
        assert sorted(await stored_ids(backend, session)) == sorted(up.made_ids[:6])
        print(f"full disk from start: sent=6 lost=3 (no disk, no backend) close {took:.3f} s")
