"""Small helpers of the agent server tests."""

from __future__ import annotations

import asyncio

from aioice import stun

from tests.rtc_client import RawClient


async def connected_client(server) -> RawClient:
    c = RawClient(server.url)
    await c.connect()
    await c.wait_for("session.created")
    return c


async def inbound_packets(c: RawClient) -> int:
    stats = await c.pc.getStats()
    return sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")


async def packets_in(c: RawClient, seconds: float) -> int:
    before = await inbound_packets(c)
    await asyncio.sleep(seconds)
    return await inbound_packets(c) - before


async def consent_answered(c: RawClient) -> bool:
    """Send one ICE consent check (a STUN binding request, RFC 7675) to the server, as aioice
    does every ~5 s; True when the server answers it."""
    connection = c.pc.getTransceivers()[0].sender.transport.transport._connection
    pair = next(iter(connection._nominated.values()))
    request = connection.build_request(pair, nominate=False)
    try:
        await pair.protocol.request(request, pair.remote_addr,
                                    integrity_key=connection.remote_password.encode("utf8"), retransmissions=1)
        return True
    except stun.TransactionError:
        return False


def discard(*procs) -> None:
    """Stop `serve` processes (tests.agent_server.ServeProcess) and remove their temp dirs."""
    import shutil

    for proc in procs:
        if proc is not None:
            proc.stop()
            shutil.rmtree(proc.dir, ignore_errors=True)
