"""One connection attempt: token, ICE plan, peer connection, SDP, data channel, watchdog.

    async with Connection(...) as conn:   # opens within the connect timeout
        reason = await conn.dead          # a future: why the path died

Teardown runs on every exit (error, cancellation, hang-up) and is shielded: a cancellation
that lands in the middle of it waits for it to finish, so no half-closed peer connection, task
or drain is left behind. During a session renewal two of these are open at once; only the
`active` one feeds the speaker and reads the microphone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from sandra_tui.call import signaling
from sandra_tui.call.events import CallState, Quality
from sandra_tui.call.ice import backend_is_loopback, gather_servers
from sandra_tui.call.quality import loss_percent, mos, read_stats
from sandra_tui.call.session import RealtimeSession
from sandra_tui.call.signaling import SignalingError
from sandra_tui.shims import aioice as aioice_shim
from sandra_tui.shims import aiortc as aiortc_shim
from sandra_tui.shims.peer import close_peer_connection

log = logging.getLogger("sandra_tui.call")
aioice_shim.install()  # a hang-up in the last ms of ICE would leak aioice's consent task

POLL_S = 0.25  # watchdog / stats poll
DC_CLOSE_GRACE_S = 0.2
QUALITY_EVERY = 4  # polls per quality event (1 s)
LEARN_CALL_URL_S = 2.0  # a hang-up during the SDP exchange waits this long for the call's URL

# Every peer connection made, so tests and diagnostics can check none is left open.
PEER_CONNECTIONS: weakref.WeakSet = weakref.WeakSet()


def open_peer_connections() -> list[RTCPeerConnection]:
    return [pc for pc in PEER_CONNECTIONS if pc.connectionState != "closed"]


class PathDead(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Connection:
    def __init__(self, *, config, http, backend: str, planner, audio, emit, latency, make_session,
                 session_id: str, attempt: int = 0, last_reason: str | None = None, last_relay: bool = False,
                 active: bool = True, on_step=None, on_token=None, resume_key: str | None = None) -> None:
        self.config = config
        self._http = http
        self._backend = backend
        self._planner = planner
        self._audio = audio
        self._emit = emit
        self._latency = latency
        self._make_session = make_session  # (send_raw, on_expired) -> RealtimeSession
        self.session_id = session_id
        self._resume_key = resume_key  # the call's previous key: proves the session is ours
        self.attempt = attempt
        self._last_reason = last_reason
        self._last_relay = last_relay
        self.active = active  # feeds the speaker, reads the microphone
        self._on_step = on_step or (lambda state: None)
        self._on_token = on_token or (lambda token: None)
        self.token: signaling.Token | None = None
        self.plan = None
        self.pc: RTCPeerConnection | None = None
        self.session: RealtimeSession | None = None
        self.call_url: str | None = None
        self.connected_at: float | None = None
        self.dead: asyncio.Future = asyncio.get_running_loop().create_future()
        self._remote_track = None
        self._first_audio_pending = False
        self._watchdog: asyncio.Task | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._closing: asyncio.Task | None = None

    # -- context manager ------------------------------------------------------------------------
    async def __aenter__(self) -> "Connection":
        try:
            async with asyncio.timeout(self.config.backend.connect_timeout_s):
                await self._open()
        except TimeoutError:
            await self.close(hangup=True)
            raise PathDead("connect_timeout") from None
        except BaseException:
            await self.close(hangup=True)  # a call the server made already is hung up, not abandoned
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close(hangup=True)

    def mark_dead(self, reason: str) -> None:
        if not self.dead.done():
            log.info("path dead: %s", reason)
            self.dead.set_result(reason)

    # -- opening --------------------------------------------------------------------------------
    async def _open(self) -> None:
        cfg = self.config
        self._on_step(CallState.ACQUIRING_TOKEN)
        started = time.monotonic()
        self.token = token = await signaling.fetch_token(
            self._http, self._backend, cfg.backend, {"session_id": self.session_id, "reconnect": self.attempt > 0},
            resume_key=self._resume_key)
        if token.session_id and token.session_id != self.session_id:
            self.session_id = token.session_id  # the backend decides when it names sessions itself
        self._on_token(token)
        self._latency("token_acquisition", (time.monotonic() - started) * 1000)

        self._on_step(CallState.CONNECTING)
        loopback = backend_is_loopback(self._backend) and backend_is_loopback(token.realtime_url)
        servers = gather_servers(cfg.ice, token.ice_servers, loopback)
        self.plan = plan = await self._planner.plan(servers, self.attempt, self._last_reason, self._last_relay)
        log.info("ICE servers for this attempt: %s", plan.describe())
        rtc = RTCConfiguration(
            iceServers=plan.to_rtc(),
            iceTransportPolicy=RTCIceTransportPolicy.RELAY if plan.relay_only else RTCIceTransportPolicy.ALL,
        )
        self.pc = pc = RTCPeerConnection(rtc)
        PEER_CONNECTIONS.add(pc)
        loop = asyncio.get_running_loop()
        connected = loop.create_future()
        connected.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if unawaited

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not connected.done():
                connected.set_result(True)
            elif state in ("failed", "closed"):
                reason = "ice_failed" if pc.iceConnectionState == "failed" else f"pc_{state}"
                if not connected.done():
                    connected.set_exception(PathDead(reason))
                self.mark_dead(reason)

        @pc.on("track")
        def _on_track(track) -> None:
            if track.kind == "audio":
                self._remote_track = track
                if self.active:
                    self._first_audio_pending = True
                    self._audio.attach_remote(track)

        dc = pc.createDataChannel("oai-events")
        dc_open = loop.create_future()
        dc.on("open", lambda: dc_open.done() or dc_open.set_result(True))
        # A closing peer connection closes its channel first: wait a moment so the reason names
        # the cause (pc_closed) rather than the symptom.
        dc.on("close", lambda: self._timers.append(loop.call_later(
            DC_CLOSE_GRACE_S, self.mark_dead, "datachannel_closed")))
        self.session = session = self._make_session(dc.send, self.mark_dead)
        dc.on("message", session.handle)
        transceiver = pc.addTransceiver(self._audio.new_mic_track(live=lambda: self.active), direction="sendrecv")
        # With a playout buffer, decode on arrival; a connection that is not active yet drops it.
        self._audio.attach_receiver(transceiver.receiver, accept=lambda: self.active)

        with aioice_shim.loopback_host_candidates(loopback):  # both ends here: ICE stays on 127.0.0.1
            await pc.setLocalDescription(await pc.createOffer())
        started = time.monotonic()
        exchange = asyncio.ensure_future(signaling.exchange_sdp(self._http, token, pc.localDescription.sdp,
                                                                cfg.backend.request_timeout_s))
        try:
            answer, self.call_url = await asyncio.shield(exchange)
        except asyncio.CancelledError:
            # The server may have made the call already: learn its URL, so that the teardown
            # can hang it up rather than leave it holding a slot until its own timeout.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                _, self.call_url = await asyncio.wait_for(exchange, LEARN_CALL_URL_S)
            raise
        self._latency("sdp_exchange", (time.monotonic() - started) * 1000)
        answer = signaling.normalize_answer(answer)
        started = time.monotonic()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as exc:  # noqa: BLE001 - aiortc raises ValueError/KeyError/... on bad SDP
            raise SignalingError("signaling_error", f"sdp: the answer was rejected: {exc}", retryable=False) from None
        if not signaling.has_end_of_candidates(answer):
            await pc.addIceCandidate(None)
        await connected
        await dc_open
        self.connected_at = time.monotonic()
        self._latency("ice_connect", (self.connected_at - started) * 1000)
        if hasattr(session, "wait_started"):  # GPT-Live (#22): no command before session.started
            await session.wait_started()
        session.configure(cfg.session)
        self._watchdog = asyncio.create_task(self._watch(pc), name="sandra-watchdog")

    # -- renewal hand-over ----------------------------------------------------------------------
    def activate(self) -> None:
        """This connection now feeds the speaker and reads the microphone."""
        self.active = True
        if self._remote_track is not None:
            self._audio.attach_remote(self._remote_track)

    def deactivate(self) -> None:
        self.active = False

    # -- observations ---------------------------------------------------------------------------
    def on_output_frame(self, samples, now: float) -> None:
        if self._first_audio_pending and self.connected_at is not None:
            self._first_audio_pending = False
            # From this connection's own start: a sample never spans two connections.
            self._latency("time_to_first_audio", (now - self.connected_at) * 1000)
        if self.session is not None:
            self.session.on_output_frame(samples, now)

    async def _watch(self, pc: RTCPeerConnection) -> None:
        """Declare the path dead after `watchdog_ms` without inbound RTP (aiortc's own consent
        check takes ~30 s and ends in "closed"); publish quality once a second."""
        cfg = self.config
        # Declared dead within watchdog_ms of the last packet, poll granularity included.
        limit = max(POLL_S, cfg.reconnect.watchdog_ms / 1000 - 2 * POLL_S)
        last_count, last_rx, polls = -1, time.monotonic(), 0
        seen = False
        while True:
            await asyncio.sleep(POLL_S)
            try:
                snap = read_stats(await pc.getStats())
            except Exception:  # noqa: BLE001 - a closing PC can fail getStats
                return
            now = time.monotonic()
            if snap.packets_received != last_count:
                seen = seen or snap.packets_received > 0
                last_count, last_rx = snap.packets_received, now
            idle = now - last_rx
            if (seen and idle >= limit) or (not seen and idle >= max(limit, cfg.backend.connect_timeout_s)):
                self.mark_dead("media_timeout")
                return
            polls += 1
            if polls % QUALITY_EVERY == 0 and self.active:
                loss = loss_percent(snap.packets_lost, snap.packets_received)
                one_way = (snap.rtt_ms or 0.0) / 2
                self._emit(Quality(
                    rtt_ms=None if snap.rtt_ms is None else round(snap.rtt_ms, 1),
                    jitter_ms=None if snap.jitter_ms is None else round(snap.jitter_ms, 1),
                    packets_lost=snap.packets_lost, packets_received=snap.packets_received,
                    loss_pct=round(loss, 2), mos=mos(one_way, snap.jitter_ms or 0.0, loss)))

    # -- teardown -------------------------------------------------------------------------------
    async def close(self, hangup: bool = True) -> None:
        """Tear everything down; safe to call twice and to cancel (the teardown still completes)."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._teardown(hangup))
        try:
            await asyncio.shield(self._closing)
        except asyncio.CancelledError:
            if not self._closing.done():
                with contextlib.suppress(Exception):
                    await self._closing
            raise

    async def _teardown(self, hangup: bool) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if self.active:
            await self._audio.detach()
        self.active = False
        if hangup and self.token is not None and self.call_url:
            await signaling.hang_up(self._http, self.token, self.call_url)
        pc, self.pc = self.pc, None
        if pc is not None:
            await close_peer_connection(pc)
        if not self.dead.done():
            self.dead.cancel()


# -- media path (read on request, not on the watchdog's poll) ----------------------------------
def _server_for(plan, local_type: str) -> str:
    """aiortc gathers through the first STUN and the first TURN server it is given."""
    if plan is None or local_type not in ("srflx", "relay"):
        return ""
    want = ("turn:", "turns:") if local_type == "relay" else ("stun:",)
    for server in plan.to_rtc():
        urls = server.urls if isinstance(server.urls, list) else [server.urls]
        for url in urls:
            if url.startswith(want):
                return url.split("?")[0]
    return ""


async def read_media_path(conn: Connection, now: float | None = None):
    """The selected candidate pair, server, codec and bitrate of `conn`, or None before ICE is up."""
    from sandra_tui.call.events import MediaPath

    pc = conn.pc
    if pc is None or not pc.getTransceivers():
        return None
    transceiver = pc.getTransceivers()[0]
    try:
        ice = transceiver.receiver.transport.transport
        pair = aioice_shim.nominated_pair(aiortc_shim.ice_connection(ice))
    except AttributeError:
        return None
    if pair is None:
        return None
    codec = ""
    codecs = aiortc_shim.negotiated_codecs(transceiver)
    if codecs:
        c = codecs[0]
        codec = f"{c.mimeType.split('/')[-1].lower()}/{c.clockRate}" + (f"/{c.channels}" if c.channels else "")
    rx = tx = transport_rx = 0
    for stats in (await pc.getStats()).values():
        kind = getattr(stats, "type", "")
        if kind == "inbound-rtp":
            rx += getattr(stats, "bytesReceived", 0) or 0
        elif kind == "outbound-rtp":
            tx += getattr(stats, "bytesSent", 0) or 0
        elif kind == "transport":
            transport_rx += getattr(stats, "bytesReceived", 0) or 0
    # aiortc 1.16's inbound-rtp counts packets, not bytes (rx read 0 kbit/s on a real call with
    # Sandra talking): the bundled transport's count stands in (RTP, RTCP and the data channel).
    rx = rx or transport_rx
    now = time.monotonic() if now is None else now
    prev = getattr(conn, "_media_prev", None)
    conn._media_prev = (now, rx, tx)
    rx_kbps = tx_kbps = None
    if prev is not None and now > prev[0]:
        rx_kbps = round((rx - prev[1]) * 8 / 1000 / (now - prev[0]), 1)
        tx_kbps = round((tx - prev[2]) * 8 / 1000 / (now - prev[0]), 1)
    local = pair.local_candidate.type
    api = getattr(conn.session, "api", "realtime")
    return MediaPath(local, pair.remote_candidate.type, _server_for(conn.plan, local), codec, rx_kbps, tx_kbps, api)
