"""Whatever a STUN/TURN server answers, the probe gives a result row and raises nothing: real
loopback UDP servers that answer badly, and hypothesis feeding arbitrary datagrams and
STUN-shaped messages with random attributes."""

import asyncio
import logging
import socket
import struct
import threading
from contextlib import contextmanager

from aioice import stun
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandra_tui.call.probe_adapter import make_probe
from sandra_tui.config.probe import ProbeError, ProbeTarget, parse_answer, probe_one, probe_servers

COOKIE = 0x2112A442
REQUEST = bytes(stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST))


@contextmanager
def udp_server(answer):
    """A loopback UDP server; `answer(n, request)` gives the bytes for the n-th distinct request
    (retransmits get the same answer), or None to stay silent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()
    seen: list[bytes] = []

    def serve():
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            txid = data[8:20]
            if txid not in seen:
                seen.append(txid)
            reply = answer(seen.index(txid), data)
            if reply is not None:
                sock.sendto(reply, addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def reply_to(request: bytes, message_class, attributes) -> bytes:
    req = stun.parse_message(request)
    return bytes(stun.Message(req.message_method, message_class, transaction_id=req.transaction_id,
                              attributes=attributes))


async def test_401_with_realm_and_no_nonce_is_a_rejection_row():
    def answer(n, request):
        return reply_to(request, stun.Class.ERROR, {"ERROR-CODE": (401, "Unauthorized"), "REALM": "example.org"})

    with udp_server(answer) as port:
        url = f"turn:127.0.0.1:{port}"
        (result,) = await probe_servers([ProbeTarget(url, "op", "pw-secret")], 5.0)
        assert not result.reachable and result.kind == "turn"
        assert result.error == "TURN server rejected the request (401 without NONCE)"
        # The call's planner gets "no TURN" for it, not an exception.
        probe = make_probe()
        server = type("S", (), {"url": url, "username": "op", "credential": "pw-secret", "kind": "turn"})()
        assert await probe([server], 5.0) == {url: None}


async def test_junk_and_requests_from_the_server_are_malformed_answers():
    replies = {
        "junk": lambda request: b"HTTP/1.1 400 Bad Request\r\n\r\n",
        "request": lambda request: reply_to(request, stun.Class.REQUEST, {}),
        "wrong method": lambda request: bytes(stun.Message(stun.Method.REFRESH, stun.Class.RESPONSE,
                                                           transaction_id=request[8:20])),
        "no error code": lambda request: reply_to(request, stun.Class.ERROR, {"REALM": "x"}),
    }
    for name, make in replies.items():
        with udp_server(lambda n, request, make=make: make(request)) as port:
            stun_row, turn_row = await probe_servers(
                [ProbeTarget(f"stun:127.0.0.1:{port}"), ProbeTarget(f"turn:127.0.0.1:{port}", "op", "pw")], 5.0)
        for row in (stun_row, turn_row):
            assert not row.reachable and row.error.startswith("malformed answer"), (name, row)


def stun_shaped(max_extra):
    """A STUN answer template: mostly the request's method, a response or an error, a few
    well-formed attributes (ERROR-CODE, REALM, NONCE, addresses), then random ones."""
    codes = st.sampled_from([300, 400, 401, 420, 437, 438, 441, 486, 500, 699])
    address = st.tuples(st.sampled_from(["127.0.0.1", "::1"]), st.integers(0, 0xFFFF))
    wellformed = st.fixed_dictionaries({}, optional={
        "ERROR-CODE": st.tuples(codes, st.text(max_size=8)), "REALM": st.text(max_size=12),
        "NONCE": st.binary(min_size=1, max_size=16), "XOR-MAPPED-ADDRESS": address,
        "XOR-RELAYED-ADDRESS": address, "LIFETIME": st.integers(0, 2**32 - 1)})
    extra = st.one_of(
        st.tuples(st.sampled_from(sorted(stun.ATTRIBUTES_BY_TYPE)), st.binary(max_size=40)),  # known type
        st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=24)),  # any type at all
    )
    method = st.one_of(st.just(None), st.sampled_from([0x001, 0x003, 0x004, 0x3FFF]))  # None: the request's
    klass = st.sampled_from([0x0100, 0x0110, 0x0100, 0x0110, 0x0000, 0x0010])
    return st.tuples(method, klass, wellformed, st.lists(extra, max_size=max_extra),
                     st.sampled_from([0, 0, 0, -1, 1]), st.sampled_from([COOKIE, COOKIE, 0]))


def build(template, request: bytes) -> bytes:
    """The answer's bytes, for the request's transaction (XOR addresses are keyed by it)."""
    method, klass, wellformed, extra, length_error, cookie = template
    txid = request[8:20]
    if method is None:
        method = struct.unpack("!H", request[:2])[0] & 0x3EEF
    body = b""
    for name, value in wellformed.items():
        kind, _, pack, _ = stun.ATTRIBUTES_BY_NAME[name]
        packed = pack(value, txid) if name.startswith("XOR-") else pack(value)
        body += struct.pack("!HH", kind, len(packed)) + packed + b"\x00" * (-len(packed) % 4)
    for kind, value in extra:
        body += struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)
    msg_type = ((method & 0xF80) << 2) | ((method & 0x070) << 1) | (method & 0x00F) | klass
    return struct.pack("!HHI12s", msg_type & 0xFFFF, max(0, len(body) + length_error) & 0xFFFF, cookie, txid) + body


@settings(max_examples=400, deadline=None)
@given(data=st.one_of(st.binary(max_size=120), stun_shaped(6).map(lambda t: build(t, REQUEST))))
def test_parse_answer_raises_only_probe_error(data):
    try:
        reply = parse_answer(data, REQUEST[8:20])
    except ProbeError as exc:
        assert str(exc).startswith("malformed answer")
    else:
        assert reply is None or reply.transaction_id == REQUEST[8:20]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.lists(st.one_of(st.binary(max_size=60), stun_shaped(3), stun_shaped(0)), min_size=1, max_size=3),
       kind=st.sampled_from(["stun", "turn"]))
def test_probe_over_udp_survives_any_answer(caplog, answers, kind):
    def answer(n, request):
        if n >= len(answers):
            return None
        item = answers[n]
        return item if isinstance(item, bytes) else build(item, request)

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="sandra_tui.config.probe"):
        with udp_server(answer) as port:
            row = asyncio.run(probe_one(ProbeTarget(f"{kind}:127.0.0.1:{port}", "op", "pw"), 0.3))
    assert row.kind == kind
    assert row.reachable or row.error
    assert not row.error.startswith("probe failed"), row  # the safety net is not what held
    assert not caplog.records
