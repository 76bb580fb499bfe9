"""Fault injection for `serve --faults`, switched on and off at run time (also mid-call).

Admin API (registered only with --faults; answers loopback clients only, 403 otherwise):

    GET    /_faults                      -> {"faults": {...}, "calls": [call ids]}
    POST   /_faults {"media_stopped": true, ...}
                                         -> {"faults": {...}, "affected": n}; unknown keys or bad
                                            values: 400 and nothing changes
    POST   /_faults {"action": "close_pc" | "close_dc", "call_id"?: "rtc_..."}
                                         -> closes the peer connection / data channel of one call
                                            (or of every call); "affected" counts them
    DELETE /_faults                      -> everything back to normal

Switches (all global; they apply to running calls at once):
    media_stopped   no RTP/RTCP leaves the server (the call looks alive on the data channel)
    stun_stopped    the server stops answering (and sending) STUN, i.e. consent checks fail
    path_dead       nothing at all leaves the server: RTP, RTCP, STUN, SCTP (a vanished peer)
    rtp_drop        fraction 0..1 of outgoing RTP packets dropped (RTCP is kept)
    rtp_jitter_ms   each outgoing RTP packet delayed by a random 0..N ms (so also reordered)
    token_status    401 | 403 | 429 | 500 | 503: the token endpoint answers this (null: normal)
    retry_after_s   Retry-After of an injected 429/503
    answer_delay_ms the SDP answer waits this long
    answer_shape    "full" | "openai_docs" (ICE/DTLS attributes only in the first m-section)
    agent_mode      "reply" | "echo" (the caller's utterance played back after it ends) |
                    "mirror" (every frame sent straight back: a round-trip probe)
    seed            seeds the drop/jitter random generator (reproducible tests)

Media faults act on the DTLS transport's outgoing paths (`RTCDtlsTransport._send_rtp`, which
RTCRtpSender uses for RTP and RTCP, and `_send_data` for SCTP) and on aioice's STUN protocols.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass, fields


MAX_JITTER_MS = 2000


@dataclass
class Faults:
    media_stopped: bool = False
    stun_stopped: bool = False
    path_dead: bool = False
    rtp_drop: float = 0.0
    rtp_jitter_ms: float = 0.0
    token_status: int | None = None
    retry_after_s: int = 2
    answer_delay_ms: int = 0
    answer_shape: str = "full"
    agent_mode: str = "reply"
    seed: int | None = None

    def update(self, data: dict) -> list[str]:
        """Apply a JSON patch; return the errors (unknown keys, bad values). All or nothing."""
        errors = []
        known = {f.name for f in fields(self)}
        for key, value in data.items():
            if key not in known:
                errors.append(f"unknown fault {key!r}")
                continue
            problem = _check(key, value)
            if problem:
                errors.append(f"{key}: {problem}")
        if not errors:
            for key, value in data.items():
                setattr(self, key, value)
        return errors

    def reset(self, **defaults) -> None:
        fresh = Faults(**defaults)
        for f in fields(self):
            setattr(self, f.name, getattr(fresh, f.name))

    def to_dict(self) -> dict:
        return asdict(self)

    def active(self) -> dict:
        """The switches that differ from normal, for log lines."""
        normal = Faults(agent_mode=self.agent_mode).to_dict()
        return {k: v for k, v in self.to_dict().items() if v != normal[k]}


def _number(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _check(key: str, value) -> str | None:
    if key in ("media_stopped", "stun_stopped", "path_dead"):
        return None if isinstance(value, bool) else "expected true or false"
    if key == "rtp_drop":
        return None if _number(value, 0, 1) else "expected a fraction from 0 to 1"
    if key == "rtp_jitter_ms":
        return None if _number(value, 0, MAX_JITTER_MS) else f"expected a number of ms from 0 to {MAX_JITTER_MS}"
    if key == "answer_delay_ms":
        return None if _number(value, 0, 60000) else "expected a number of ms from 0 to 60000"
    if key == "retry_after_s":
        return None if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3600 \
            else "expected whole seconds from 0 to 3600"
    if key == "token_status":
        return None if value in (None, 401, 403, 429, 500, 503) else "expected null, 401, 403, 429, 500 or 503"
    if key == "answer_shape":
        return None if value in ("full", "openai_docs") else "expected 'full' or 'openai_docs'"
    if key == "agent_mode":
        return None if value in ("reply", "echo", "mirror") else "expected 'reply', 'echo' or 'mirror'"
    if key == "seed":
        return None if value is None or (isinstance(value, int) and not isinstance(value, bool)) \
            else "expected an integer"
    return "not switchable"


def _is_rtcp(data: bytes) -> bool:
    return len(data) > 1 and 192 <= data[1] <= 223


class MediaFaults:
    """The fault hooks of one peer connection; `close()` drops the packets still held back."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self._seed = faults.seed
        self.pending: set[asyncio.Task] = set()

    def install(self, pc) -> "MediaFaults":
        for transceiver in pc.getTransceivers():
            self._wrap_dtls(transceiver.sender.transport)
        sctp = pc.sctp
        if sctp is not None:
            self._wrap_dtls(sctp.transport)
        return self

    def _random(self) -> float:
        if self.faults.seed != self._seed:  # a new seed switched on: restart the sequence
            self._seed = self.faults.seed
            self.rng.seed(self._seed)
        return self.rng.random()

    def _wrap_dtls(self, dtls) -> None:
        if dtls is None or getattr(dtls, "_sandra_faults", False):
            return
        dtls._sandra_faults = True
        faults = self.faults
        original_rtp, original_data = dtls._send_rtp, dtls._send_data

        async def send_rtp(data: bytes) -> None:
            if faults.path_dead or faults.media_stopped:
                return
            if _is_rtcp(data):
                await original_rtp(data)
                return
            if faults.rtp_drop and self._random() < faults.rtp_drop:
                return
            if faults.rtp_jitter_ms:
                self._later(self._random() * faults.rtp_jitter_ms / 1000, original_rtp, data)
                return
            await original_rtp(data)

        async def send_data(data: bytes) -> None:
            if faults.path_dead:
                return
            await original_data(data)

        dtls._send_rtp = send_rtp
        dtls._send_data = send_data
        self._wrap_ice(dtls.transport)

    def _later(self, delay: float, send, data: bytes) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            try:
                await send(data)
            except Exception:  # noqa: BLE001 - the call may have ended meanwhile
                pass

        task = asyncio.ensure_future(run())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def _wrap_ice(self, ice_transport) -> None:
        # Here, not at the top: serve imports aiortc with its first call, off its start-up (issue #23).
        from sandra_tui.shims import aioice as aioice_shim
        from sandra_tui.shims import aiortc as aiortc_shim

        connection = aiortc_shim.ice_connection(ice_transport)
        if connection is None or getattr(connection, "_sandra_faults", False):
            return
        connection._sandra_faults = True
        faults = self.faults
        original = connection.request_received

        def request_received(message, addr, protocol) -> None:
            if faults.path_dead or faults.stun_stopped:
                return  # no answer to connectivity / consent checks
            original(message, addr, protocol)

        connection.request_received = request_received
        for protocol in aioice_shim.stun_protocols(connection):
            send_stun = protocol.send_stun

            def quiet_send_stun(message, addr, _send=send_stun) -> None:
                if faults.path_dead or faults.stun_stopped:
                    return  # our own consent checks stay home too
                _send(message, addr)

            protocol.send_stun = quiet_send_stun

    def close(self) -> None:
        for task in list(self.pending):
            task.cancel()
        self.pending.clear()


def install_media_faults(pc, faults: Faults) -> MediaFaults:
    """Wrap the peer connection's outgoing paths so the faults apply to this call."""
    return MediaFaults(faults).install(pc)
