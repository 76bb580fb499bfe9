"""ICE server probe: a STUN Binding to every STUN server and a TURN Allocate (long-term
credentials) to every TURN server, all at once under one deadline.

aiortc uses only the first STUN and the first TURN server of its list, and a silent STUN server
costs ~5 s per connect, so this probe is what lets the controller put a healthy server first.
The wire format comes from aioice's STUN code; only the exchange is ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import ssl
import struct
import sys
import time
from dataclasses import asdict, dataclass, field

from aioice import stun
from aioice.turn import make_integrity_key

from sandra_tui.config.urls import IceUrlError, parse_ice_url

UDP_TRANSPORT = 0x11000000  # REQUESTED-TRANSPORT: UDP (RFC 5766)
RETRANSMIT_S = (0.0, 0.1, 0.2, 0.4, 0.8, 1.6)

log = logging.getLogger(__name__)


@dataclass
class ProbeTarget:
    url: str
    username: str = ""
    credential: str = field(default="", repr=False)


@dataclass
class ProbeResult:
    url: str
    kind: str  # stun | turn
    reachable: bool
    rtt_ms: float | None = None
    error: str = ""
    address: str = ""  # mapped (STUN) or relayed (TURN) address

    def to_dict(self) -> dict:
        return asdict(self)


class ProbeError(Exception):
    pass


def parse_answer(data: bytes, transaction_id: bytes) -> stun.Message | None:
    """The server's answer to our request `transaction_id`, or None for a well-formed STUN
    message about another transaction (a late answer to a retransmit). Anything else raises
    ProbeError: nothing a server sends raises any other exception from here."""
    try:
        reply = stun.parse_message(bytes(data))
    except Exception as exc:  # noqa: BLE001 - aioice's parser raises ValueError, struct.error...
        raise ProbeError(f"malformed answer: not a STUN message ({type(exc).__name__}: {str(exc)[:80]})") from None
    if reply.transaction_id != transaction_id:
        return None
    if reply.message_class not in (stun.Class.RESPONSE, stun.Class.ERROR):
        raise ProbeError(f"malformed answer: a STUN {reply.message_class.name.lower()}, not a response")
    return reply


def _expect(reply: stun.Message, method: stun.Method) -> stun.Message:
    """`reply` when it answers `method`; an error reply must carry its ERROR-CODE."""
    if reply.message_method != method:
        raise ProbeError(f"malformed answer: a {reply.message_method.name} reply to a {method.name} request")
    if reply.message_class == stun.Class.ERROR and reply.error_code is None:
        raise ProbeError("malformed answer: an error reply without ERROR-CODE")
    return reply


class _Channel:
    """One request/response exchange over UDP, TCP or TLS; STUN over TCP is length-framed by its header."""

    def __init__(self, transport: str, host: str, port: int, tls: bool) -> None:
        self.transport, self.host, self.port, self.tls = transport, host, port, tls
        self._udp = None
        self._reader = self._writer = None
        self._responses: asyncio.Queue[bytes] = asyncio.Queue()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            queue = self._responses

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data, addr) -> None:
                    queue.put_nowait(data)

                def error_received(self, exc) -> None:
                    queue.put_nowait(exc)

            self._udp, _ = await loop.create_datagram_endpoint(Proto, remote_addr=(self.host, self.port))
        else:
            context = ssl.create_default_context() if self.tls else None
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, ssl=context, server_hostname=self.host if self.tls else None)

    async def exchange(self, message: stun.Message, timeout: float) -> stun.Message:
        data = bytes(message)
        if self._udp is not None:
            return await self._exchange_udp(data, message.transaction_id, timeout)
        self._writer.write(data)
        await self._writer.drain()
        while True:
            header = await self._reader.readexactly(20)
            length = struct.unpack("!H", header[2:4])[0]
            body = await self._reader.readexactly(length)
            reply = parse_answer(header + body, message.transaction_id)
            if reply is not None:
                return reply

    async def _exchange_udp(self, data: bytes, transaction_id: bytes, timeout: float) -> stun.Message:
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        sends = [loop.call_later(delay, self._udp.sendto, data) for delay in RETRANSMIT_S]
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                item = await asyncio.wait_for(self._responses.get(), remaining)
                if isinstance(item, Exception):
                    raise item
                reply = parse_answer(item, transaction_id)
                if reply is not None:
                    return reply
        finally:
            for handle in sends:
                handle.cancel()

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()


def _address(value) -> str:
    if not value:
        return ""
    host, port = value[0], value[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _probe_stun(channel: _Channel, timeout: float) -> str:
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    reply = _expect(await channel.exchange(request, timeout), stun.Method.BINDING)
    if reply.message_class != stun.Class.RESPONSE:
        raise ProbeError(f"STUN error {reply.error_code}")
    return _address(reply.attributes.get("XOR-MAPPED-ADDRESS") or reply.attributes.get("MAPPED-ADDRESS"))


async def _probe_turn(channel: _Channel, target: ProbeTarget, timeout_at: float) -> str:
    def left() -> float:
        return max(0.001, timeout_at - time.monotonic())

    request = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST,
                           attributes={"REQUESTED-TRANSPORT": UDP_TRANSPORT, "LIFETIME": 60})
    reply = _expect(await channel.exchange(request, left()), stun.Method.ALLOCATE)
    if reply.message_class == stun.Class.RESPONSE:
        return _address(reply.attributes.get("XOR-RELAYED-ADDRESS"))  # no auth asked (unusual)
    if reply.error_code != 401:
        raise ProbeError(f"TURN error {reply.error_code}")
    if "REALM" not in reply.attributes or "NONCE" not in reply.attributes:
        missing = " and ".join(a for a in ("REALM", "NONCE") if a not in reply.attributes)
        raise ProbeError(f"TURN server rejected the request (401 without {missing})")
    if not target.username:
        raise ProbeError("TURN server wants credentials; none configured")
    realm, nonce = reply.attributes["REALM"], reply.attributes["NONCE"]
    key = make_integrity_key(target.username, realm, target.credential)
    for _ in range(2):  # one more try on 438 Stale Nonce
        request = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST, attributes={
            "REQUESTED-TRANSPORT": UDP_TRANSPORT, "LIFETIME": 60, "USERNAME": target.username,
            "REALM": realm, "NONCE": nonce})
        request.add_message_integrity(key)
        reply = _expect(await channel.exchange(request, left()), stun.Method.ALLOCATE)
        if reply.message_class == stun.Class.RESPONSE:
            relayed = _address(reply.attributes.get("XOR-RELAYED-ADDRESS"))
            await _release(channel, target.username, realm, reply.attributes.get("NONCE", nonce), key)
            return relayed
        if reply.error_code == 438 and "NONCE" in reply.attributes:
            nonce = reply.attributes["NONCE"]
            continue
        break
    if reply.error_code in (401, 441):
        raise ProbeError("TURN credentials rejected")
    raise ProbeError(f"TURN error {reply.error_code}")


async def _release(channel: _Channel, username: str, realm: str, nonce: bytes, key: bytes) -> None:
    """Refresh with LIFETIME 0 frees the allocation, so a probe leaves nothing on the server."""
    request = stun.Message(stun.Method.REFRESH, stun.Class.REQUEST, attributes={
        "LIFETIME": 0, "USERNAME": username, "REALM": realm, "NONCE": nonce})
    request.add_message_integrity(key)
    try:
        await channel.exchange(request, 0.2)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ProbeError):
        pass  # the allocation expires on its own within LIFETIME


async def probe_one(target: ProbeTarget, timeout_s: float) -> ProbeResult:
    started = time.monotonic()
    deadline = started + timeout_s
    try:
        url = parse_ice_url(target.url)
    except IceUrlError as exc:
        return ProbeResult(target.url, "?", False, error=exc.reason)
    kind = "turn" if url.is_turn else "stun"
    transport = "tcp" if url.scheme == "turns" or url.transport == "tcp" else "udp"
    channel = _Channel(transport, url.host, url.port, tls=url.scheme == "turns")
    try:
        async with asyncio.timeout(timeout_s):
            await channel.open()
            if kind == "stun":
                address = await _probe_stun(channel, deadline - time.monotonic())
            else:
                address = await _probe_turn(channel, target, deadline)
        return ProbeResult(target.url, kind, True, round((time.monotonic() - started) * 1000, 1), address=address)
    except TimeoutError:
        error = f"no answer within {timeout_s * 1000:.0f} ms"
    except ConnectionRefusedError:
        error = "connection refused (port closed)"
    except OSError as exc:
        error = "name not resolved" if "Name or service" in str(exc) or "getaddrinfo" in str(exc) \
            else (exc.strerror or str(exc))
    except (ProbeError, ValueError) as exc:
        error = str(exc)
    except asyncio.IncompleteReadError:
        error = "the server closed the connection"
    except Exception as exc:  # noqa: BLE001 - a bug of ours must cost one row, never the call
        log.error("probe of %s failed unexpectedly", target.url, exc_info=True)
        error = f"probe failed: {type(exc).__name__}"
    finally:
        channel.close()
    return ProbeResult(target.url, kind, False, error=error)


async def probe_servers(targets: list[ProbeTarget], timeout_s: float = 0.5) -> list[ProbeResult]:
    """Probe every server at once; every result is in by `timeout_s` (plus scheduling)."""
    return list(await asyncio.gather(*(probe_one(t, timeout_s) for t in targets)))


def targets_from_config(ice) -> list[ProbeTarget]:
    return [ProbeTarget(u) for u in ice.stun] + [
        ProbeTarget(t.url, t.username, t.credential.get_secret_value()) for t in ice.turn]


def run_cli(args: argparse.Namespace) -> int:
    """`sandra-tui probe-ice`: exit 0 when every server answered, 1 when any did not."""
    from sandra_tui.config.cli import load_for_cli

    loaded = load_for_cli(args)
    ice = loaded.config.ice
    timeout_ms = args.timeout_ms if args.timeout_ms is not None else ice.probe_timeout_ms
    if not 10 <= timeout_ms <= 60000:
        print("sandra-tui probe-ice: --timeout-ms must be 10-60000", file=sys.stderr)
        return 2
    targets = targets_from_config(ice)
    started = time.monotonic()
    results = asyncio.run(probe_servers(targets, timeout_ms / 1000)) if targets else []
    elapsed = round((time.monotonic() - started) * 1000, 1)
    if args.json:
        print(json.dumps({"timeout_ms": timeout_ms, "elapsed_ms": elapsed,
                          "results": [r.to_dict() for r in results]}, indent=2))
    else:
        if not results:
            print("no ICE servers configured")
        width = max([len(r.url) for r in results] + [6])
        print(f"{'server':<{width}}  kind  reachable  rtt ms  error")
        for r in results:
            rtt = f"{r.rtt_ms:.1f}" if r.rtt_ms is not None else "-"
            print(f"{r.url:<{width}}  {r.kind:<4}  {'yes' if r.reachable else 'no':<9}  {rtt:>6}  {r.error}")
        print(f"{sum(r.reachable for r in results)}/{len(results)} reachable in {elapsed:.0f} ms")
    return 0 if all(r.reachable for r in results) else 1
