"""Calls of the local upstream: SDP in, answer out, one peer connection + agent per call,
freed when the call ends, the peer closes, or the caller goes silent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandra_tui.server.faults import Faults, install_media_faults
from sandra_tui.server import live_dialect  # GPT-Live (#22)

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

    from sandra_tui.server.agent import LocalAgentCall
    from sandra_tui.server.faults import MediaFaults

log = logging.getLogger("sandra_tui.server.calls")


_warm_lock = threading.Lock()
_warmed = threading.Event()


def warm() -> None:
    """Load the call stack (aiortc, av, numpy, the agent) and build the speech model. `serve`
    runs this on a thread of its own just after it is ready (server/main.py), so neither the
    ready file nor the loop waits for it: a stop (SIGTERM, the parent's end) is handled at once.
    A call that comes first waits for it off the loop (the first call still hears)."""
    with _warm_lock:
        if _warmed.is_set():
            return
        from sandra_tui.server import agent, asr
        from sandra_tui.shims import aioice as aioice_shim

        aioice_shim.install()  # a client hanging up in the last ms of ICE would leak a consent task here
        agent.LocalAgentCall  # noqa: B018 - imported for its side: aiortc, av, numpy
        asr.shared_model()
        _warmed.set()


@dataclass
class Call:
    id: str
    key: str = field(repr=False)
    client: str
    pc: RTCPeerConnection
    agent: LocalAgentCall
    session_id: str = ""
    started: float = field(default_factory=time.monotonic)
    media_faults: MediaFaults | None = None
    connected: bool = False
    expiry: asyncio.Task | None = None  # --session-max-s
    ended: bool = False
    hung_up: bool = False


def new_call_id(replica_id: str | None = None) -> str:
    """The id in `Location: /v1/realtime/calls/{id}`: it names the replica (server/replica.py)."""
    from sandra_tui.server import replica

    return replica.new_call_id(replica_id)


def _key_id(key: str) -> str:
    """Calls are looked up by a digest of their key, never by the key itself (no secret as a
    dict key whose lookup time depends on it)."""
    return hashlib.sha256(key.encode()).hexdigest()


class CallError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def docs_shaped(sdp: str) -> str:
    """ICE/DTLS attributes only in the first m-section, like the answer in OpenAI's docs."""
    parts = re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)
    if len(parts) <= 2:
        return sdp
    rest = [re.sub(r"^a=(ice-ufrag|ice-pwd|setup|fingerprint):.*\r?\n", "", p, flags=re.MULTILINE)
            for p in parts[2:]]
    return "".join(parts[:2] + rest)


class CallRegistry:
    def __init__(self, faults: Faults, model: str, voice: str, max_per_client: int = 4,
                 idle_timeout_s: float = 15.0, on_call=None, on_drop=None, max_calls: int = 64,
                 connect_timeout_s: float = 10.0, session_max_s: float | None = None,
                 loopback_only: bool = False, replica_id: str | None = None) -> None:
        self.faults = faults
        self.replica_id = replica_id  # named in call ids (server/replica.py)
        self.loopback_only = loopback_only  # serve on loopback: both ends here, ICE stays on 127.0.0.1
        self.model, self.voice = model, voice
        self.max_per_client = max_per_client
        self.max_calls = max_calls
        self._opening: dict[str, int] = {}  # calls being answered, per client (they count too)
        self._keys: set[str] = set()  # _key_id of every key with a call live or being answered
        self.idle_timeout_s = idle_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.session_max_s = session_max_s
        self.calls: dict[str, Call] = {}
        self.on_call = on_call or (lambda: None)
        self.on_drop = on_drop or (lambda: None)
        self._reaper: asyncio.Task | None = None

    def per_client(self, client: str) -> int:
        return sum(1 for c in self.calls.values() if c.client == client) + self._opening.get(client, 0)

    async def answer(self, offer_sdp: str, key: str, client: str, session_id: str = "") -> tuple[str, str]:
        key_id = _key_id(key)
        if key_id in self._keys:  # one live call per key: a reused key cannot hoard call slots
            raise CallError(409, "this key is already in a live call; get a new key for another call",
                            "call_in_progress")
        if self.per_client(client) >= self.max_per_client:
            raise CallError(429, f"at most {self.max_per_client} concurrent calls per client", "too_many_calls")
        if len(self.calls) + sum(self._opening.values()) >= self.max_calls:
            raise CallError(503, f"the server is at its limit of {self.max_calls} calls", "server_busy")
        self._opening[client] = self._opening.get(client, 0) + 1
        self._keys.add(key_id)
        answered = False
        try:
            out = await self._answer(offer_sdp, key, client, session_id)
            answered = True
            return out
        finally:
            if not answered or out[0] not in self.calls:  # failed, or ended already
                self._keys.discard(key_id)
            self._opening[client] -= 1
            if not self._opening[client]:
                del self._opening[client]

    async def _answer(self, offer_sdp: str, key: str, client: str, session_id: str) -> tuple[str, str]:
        if not _warmed.is_set():  # a call before the warm-up ended: wait for it, off the loop
            await asyncio.to_thread(warm)
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        from sandra_tui.media import rtp_passthrough
        from sandra_tui.server.agent import LocalAgentCall
        from sandra_tui.shims import aioice as aioice_shim

        call_id = new_call_id(self.replica_id)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        agent = LocalAgentCall(call_id, self.faults, self.model, self.voice)
        call = Call(call_id, key, client, pc, agent, session_id)
        if self.session_max_s:
            agent.on_session_started = lambda: self._start_expiry(call)

        @pc.on("datachannel")
        def _channel(channel) -> None:
            if channel.label == "oai-events":
                if getattr(self, "dialect", "realtime") == "live":  # GPT-Live (#22): the agent speaks Live on the wire
                    channel = live_dialect.wrap(channel, model=self.model, voice=self.voice, session_s=self.session_max_s)
                agent.attach_channel(channel)

        @pc.on("track")
        def _track(track) -> None:
            if track.kind == "audio":
                agent.spawn(agent.consume(track), "consume")

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState == "connected":
                call.connected = True
                agent.last_rx = time.monotonic()
            if pc.connectionState in ("failed", "closed"):
                await self.end(call_id, reason=pc.connectionState)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if not any(t.kind == "audio" for t in pc.getTransceivers()):
                raise ValueError("the offer has no audio section")
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":  # hear the caller without aiortc's 80 ms prefetch
                    rtp_passthrough.install(transceiver.receiver)
            pc.addTrack(agent.track)
            answer = await pc.createAnswer()
            with aioice_shim.loopback_host_candidates(self.loopback_only):  # aiortc gathers here
                await pc.setLocalDescription(answer)
        except Exception as exc:  # noqa: BLE001 - any bad offer is the caller's 400
            await pc.close()
            await agent.close()
            raise CallError(400, f"cannot use this SDP offer: {str(exc)[:200] or type(exc).__name__}",
                            "invalid_sdp") from None
        call.media_faults = install_media_faults(pc, self.faults)
        self.calls[call_id] = call
        self.on_call()
        log.debug("call %s from %s: answered", call_id, client)
        sdp = pc.localDescription.sdp
        if self.faults.answer_shape == "openai_docs":
            sdp = docs_shaped(sdp)
        return call_id, sdp

    def _start_expiry(self, call: Call) -> None:
        if call.ended:
            return
        call.expiry = asyncio.create_task(self._expire(call), name=f"expiry-{call.id}")

    async def _expire(self, call: Call) -> None:
        """As OpenAI at 60 minutes: `error` session_expired, then the peer connection closes."""
        await asyncio.sleep(self.session_max_s)
        await call.agent.expire(self.session_max_s)
        await self.end(call.id, reason="session_expired")

    async def end(self, call_id: str, reason: str = "hangup") -> bool:
        call = self.calls.pop(call_id, None)
        if call is None or call.ended:
            return False
        call.ended = True
        self._keys.discard(_key_id(call.key))
        if call.expiry is not None and call.expiry is not asyncio.current_task():
            call.expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call.expiry
        if reason in ("failed", "closed", "caller_silent", "never_connected"):
            self.on_drop()
        await call.agent.close()
        if call.media_faults is not None:
            call.media_faults.close()
        from sandra_tui.shims.peer import close_peer_connection

        await close_peer_connection(call.pc)  # also stops RTCP loops a late DTLS start began
        log.info("call %s session %s from %s: %.1fs, ended by %s, %d turns, %d frames in, %d error events",
                 call_id, call.session_id or "-", call.client, time.monotonic() - call.started, reason,
                 call.agent.turns, call.agent.frames_in, call.agent.errors)
        return True

    def start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(), name="call-reaper")

    async def _reap(self) -> None:
        """Callers that vanished without a goodbye: never connected within connect_timeout_s, or
        no inbound audio for idle_timeout_s (a live client always sends, silence included)."""
        tick = max(0.05, min(1.0, self.idle_timeout_s / 4, self.connect_timeout_s / 4))
        last = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            late, last = now - last - tick, now
            if late > tick:
                # This loop was held (a loaded machine): the callers' packets of that time wait
                # unread in the sockets, and last_rx is old because we did not read, not because
                # they did not send. Judge on the next tick, once the media tasks have run.
                continue
            for call in list(self.calls.values()):
                if not call.connected:
                    if now - call.started > self.connect_timeout_s:
                        await self.end(call.id, reason="never_connected")
                elif now - call.agent.last_rx > self.idle_timeout_s:
                    await self.end(call.id, reason="caller_silent")

    async def close_pc(self, call_id: str | None = None) -> int:
        """Fault: close peer connections abruptly (as a crashing server would)."""
        targets = [c for c in self.calls.values() if call_id in (None, c.id)]
        for call in targets:
            await call.pc.close()
        return len(targets)

    def close_dc(self, call_id: str | None = None) -> int:
        n = 0
        for call in self.calls.values():
            if call_id in (None, call.id) and call.agent.dc is not None:
                call.agent.dc.close()
                n += 1
        return n

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for call_id in list(self.calls):
            await self.end(call_id, reason="shutdown")
