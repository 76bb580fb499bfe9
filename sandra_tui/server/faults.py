"""Fault injection for `serve --faults`: switched on and off at run time through /_faults.

Media faults act on the DTLS transport's RTP send path (drop, jitter, stop); "path_dead"
also silences STUN and SCTP, so the client sees a peer that vanished without a word.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass, fields


@dataclass
class Faults:
    media_stopped: bool = False  # no RTP/RTCP leaves the server
    path_dead: bool = False  # nothing at all leaves the server (RTP, RTCP, STUN, SCTP)
    rtp_drop: float = 0.0  # fraction of outgoing RTP packets dropped
    rtp_jitter_ms: float = 0.0  # each RTP packet delayed by a random 0..N ms
    token_status: int | None = None  # 401 | 429 | 500: the token endpoint answers this
    retry_after_s: int = 2  # with token_status 429
    answer_delay_ms: int = 0  # the SDP answer waits this long
    answer_shape: str = "full"  # full | openai_docs (ICE/DTLS attributes only in the first section)
    agent_mode: str = "reply"  # reply | echo (play the user's audio straight back)
    seed: int | None = None

    def update(self, data: dict) -> list[str]:
        """Apply a JSON patch; return the errors (unknown keys, bad values)."""
        errors = []
        known = {f.name: f for f in fields(self)}
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

    def to_dict(self) -> dict:
        return asdict(self)


def _check(key: str, value) -> str | None:
    if key in ("media_stopped", "path_dead"):
        return None if isinstance(value, bool) else "expected true or false"
    if key == "rtp_drop":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
        return None if ok else "expected a fraction from 0 to 1"
    if key in ("rtp_jitter_ms", "answer_delay_ms", "retry_after_s"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 60000
        return None if ok else "expected a number of ms/s from 0 to 60000"
    if key == "token_status":
        return None if value in (None, 401, 403, 429, 500, 503) else "expected null, 401, 403, 429, 500 or 503"
    if key == "answer_shape":
        return None if value in ("full", "openai_docs") else "expected 'full' or 'openai_docs'"
    if key == "agent_mode":
        return None if value in ("reply", "echo") else "expected 'reply' or 'echo'"
    if key == "seed":
        return None if value is None or isinstance(value, int) else "expected an integer"
    return None


def _is_rtcp(data: bytes) -> bool:
    return len(data) > 1 and 192 <= data[1] <= 223


def install_media_faults(pc, faults: Faults) -> None:
    """Wrap the peer connection's outgoing paths so the faults apply to this call."""
    rng = random.Random(faults.seed)
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is None or getattr(dtls, "_sandra_faults", False):
            continue
        dtls._sandra_faults = True
        original_rtp = dtls._send_rtp
        original_data = dtls._send_data

        async def send_rtp(data: bytes, _orig=original_rtp) -> None:
            if faults.path_dead or faults.media_stopped:
                return
            if _is_rtcp(data):
                await _orig(data)
                return
            if faults.rtp_drop and rng.random() < faults.rtp_drop:
                return
            if faults.rtp_jitter_ms:
                delay = rng.random() * faults.rtp_jitter_ms / 1000

                async def later() -> None:
                    await asyncio.sleep(delay)
                    try:
                        await _orig(data)
                    except Exception:  # noqa: BLE001 - the call may have ended meanwhile
                        pass

                asyncio.ensure_future(later())
                return
            await _orig(data)

        async def send_data(data: bytes, _orig=original_data) -> None:
            if faults.path_dead:
                return
            await _orig(data)

        dtls._send_rtp = send_rtp
        dtls._send_data = send_data
        _silence_stun(dtls.transport, faults)


def _silence_stun(ice_transport, faults: Faults) -> None:
    """With path_dead, the ICE agent stops answering connectivity (consent) checks."""
    connection = getattr(ice_transport, "_connection", None)
    if connection is None:
        return
    original = connection.request_received

    def request_received(message, addr, protocol, _orig=original) -> None:
        if faults.path_dead:
            return
        _orig(message, addr, protocol)

    connection.request_received = request_received
