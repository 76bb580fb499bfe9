"""Backend down, then restarted, then a second call with a new key: every payload of the first call
is delivered with the first call's key, none twice. The real `sandra-tui serve` process, restarted
on the same port with the same data and SANDRA_SECRET (keys signed with it outlive a restart)."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

from sandra_tui.call.telemetry_link import SPOOL_NAME
from sandra_tui.telemetry.uploader import TelemetryUploader
from sandra_tui.telemetry.worker import MAX_BACKOFF_S
from tests.telemetry.serve import Backend
from tests.telemetry.test_spool_faults import until


class Call:
    """What the controller gives the uploader: the key and session of the moment."""

    def __init__(self, backend: Backend, spool, key=None, session="") -> None:
        self.key, self.session = key, session
        self.made: list[str] = []
        self.keys_used: dict[str, str] = {}  # payloadId -> the key it was made with
        self.up = TelemetryUploader(backend.metrics_url, token=lambda: self.key, session_id=lambda: self.session,
                                    batch_size=5, flush_interval_s=3600, spool_path=spool)
        make = self.up.payload

        def payload() -> dict:
            p = make()
            self.made.append(p["payloadId"])
            self.keys_used[p["payloadId"]] = self.key
            return p

        self.up.payload = payload

    async def talk(self, seconds: float) -> None:
        """A sample every 50 ms (a payload every 250 ms), as a busy call makes them."""
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            self.up.record("response_latency", 200.0 + i % 30)
            i += 1
            await asyncio.sleep(0.05)


async def outage_then_second_call(tmp_path, outage_s: float) -> dict:
    backend = await Backend().start()
    spool = tmp_path / "state" / SPOOL_NAME
    try:
        key1, session1 = await backend.token()
        first = Call(backend, spool, key1, session1)
        first.up.start()
        await first.talk(1.0)
        await until(lambda: first.up.sent == len(first.made), 10, "the first call's payloads before the outage")
        live = len(first.made)

        await backend.stop()
        down_at = time.monotonic()
        await first.talk(outage_s / 2)  # the call goes on while the backend is down
        await first.up.close(deadline_s=2.0)  # ...and ends during the outage: the rest stays spooled
        spooled = len(first.made) - first.up.sent

        # The next call's uploader starts with the app, before the backend is back (no key yet).
        second = Call(backend, spool)
        second.up.start()
        await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - down_at)))
        await backend.start()
        back_at = time.monotonic()
        await until(lambda: second.up.sent >= spooled, MAX_BACKOFF_S + 30, "the first call's spooled payloads")
        first_delivered_after = time.monotonic() - back_at

        second.key, second.session = await backend.token()
        await second.talk(1.0)
        await second.up.close(deadline_s=2.0)

        rows1 = await backend.stored(session1)
        rows2 = await backend.stored(second.session)
        outcomes = await backend.outcomes()
    finally:
        await backend.cleanup()
    ids1 = collections.Counter(p["payloadId"] for p in rows1)
    ids2 = collections.Counter(p["payloadId"] for p in rows2)
    assert sorted(ids1) == sorted(first.made), "the first call lost payloads"
    assert sorted(ids2) == sorted(second.made), "the second call lost payloads"
    assert max(ids1.values()) == 1 and max(ids2.values()) == 1
    c1, c2 = first.up.counts(), second.up.counts()
    # Nothing was posted twice without cause: a post is repeated only when its answer never came
    # (a timeout or a cut connection after it was sent: at-least-once delivery, deduplicated by
    # the server, as CI under stress-ng saw once), so the restarted server's duplicates are at
    # most those posts, and both uploaders were told of each.
    unconfirmed = c1["unconfirmed"] + c2["unconfirmed"]
    assert outcomes.get("duplicate", 0) <= unconfirmed, (outcomes, c1, c2)
    assert c1["duplicates"] + c2["duplicates"] == outcomes.get("duplicate", 0), (outcomes, c1, c2)
    assert c1["rejected"] == c2["rejected"] == 0 and c1["lost"] == c2["lost"] == 0
    assert c2["sent"] == spooled + len(second.made)  # the first call's rows went out from the second run
    assert all(first.keys_used[pid] == key1 for pid in first.made)
    # The backoff is capped at MAX_BACKOFF_S, so the spool is retried within that of the restart;
    # the slack covers `serve` answering its first requests on a loaded machine.
    assert first_delivered_after < MAX_BACKOFF_S + 6, first_delivered_after
    figures = {"outage_s": outage_s, "live": live, "spooled": spooled, "second": len(second.made),
               "stored": len(ids1) + len(ids2), "duplicates": outcomes.get("duplicate", 0),
               "delivered_after_restart_s": round(first_delivered_after, 2),
               "close_s": [round(first.up.close_seconds, 3), round(second.up.close_seconds, 3)]}
    print(f"outage: {figures}")
    return figures


async def test_outage_restart_and_a_second_call_deliver_everything_once(tmp_path):
    await outage_then_second_call(tmp_path, outage_s=6.0)


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_two_minute_outage(tmp_path):
    await outage_then_second_call(tmp_path, outage_s=120.0)
