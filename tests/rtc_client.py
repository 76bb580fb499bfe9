"""A plain aiortc client that follows only the protocol notes; used to test the agent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sandra_tui.media.opus import make_frame
from sandra_tui.media.pacing import FramePacer
from tests import realtime_schema
from tests.realtime_schema import validate_server_event

RATE, FRAME = 48000, 960


def tone(seconds: float, hz: float = 300.0, amp: int = 12000) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    # a buzzy, speech-like tone: fundamental plus harmonics, amplitude-modulated at 4 Hz
    wave = sum(np.sin(2 * np.pi * hz * k * t) / k for k in (1, 2, 3))
    return (wave / 1.8 * amp * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.int16)


class QueueTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.pending = np.zeros(0, dtype=np.int16)
        self._pacer = FramePacer()

    def say(self, samples: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, samples.astype(np.int16)])

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pacer.next()
        chunk = self.pending[:FRAME]
        self.pending = self.pending[FRAME:]
        out = np.zeros(FRAME, dtype=np.int16)
        out[: len(chunk)] = chunk
        return make_frame(out, pts)


class RawClient:
    def __init__(self, base_url: str) -> None:
        realtime_schema.warm()  # before the call: its first build would hold this loop mid-call
        self.base_url = base_url
        self.events: list[dict] = []
        self.event_times: list[float] = []
        self.frames: list[tuple[float, float]] = []  # (time, rms dBFS)
        self.mic = QueueTrack()
        self.pc: RTCPeerConnection | None = None
        self.dc = None
        self.http = aiohttp.ClientSession()
        self.call_url = None
        self.token = None
        self._tasks: list[asyncio.Task] = []
        self.invalid: list[str] = []

    async def connect(self, token_body: dict | None = None) -> None:
        await self.get_token(token_body)
        opened = await self.offer()
        answer = await self.post_offer()
        assert "a=end-of-candidates" in answer
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.wait_for(opened.wait(), 10)

    async def get_token(self, token_body: dict | None = None) -> None:
        async with self.http.post(self.base_url + "/api/sandra/token", json=token_body or {}) as r:
            assert r.status == 200, await r.text()
            self.token = await r.json()

    async def offer(self) -> asyncio.Event:
        """A peer with the data channel and the mic, its offer set locally; the event is set once
        the data channel opens."""
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.dc = self.pc.createDataChannel("oai-events")
        opened = asyncio.Event()
        self.dc.on("open", opened.set)
        self.dc.on("message", self._on_message)
        self.pc.addTransceiver(self.mic, direction="sendrecv")

        @self.pc.on("track")
        def _track(track) -> None:
            self._tasks.append(asyncio.ensure_future(self._drain(track)))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        return opened

    async def post_offer(self) -> str:
        """The offer to the token's realtime_url with its key: the answer SDP."""
        headers = {"Authorization": f"Bearer {self.token['value']}", "Content-Type": "application/sdp"}
        async with self.http.post(self.token["realtime_url"], data=self.pc.localDescription.sdp,
                                  headers=headers) as r:
            assert r.status == 201, await r.text()
            assert r.content_type == "application/sdp"
            self.call_url = r.headers["Location"]
            return await r.text()

    def _on_message(self, raw) -> None:
        event = json.loads(raw)
        self.events.append(event)
        self.event_times.append(time.monotonic())
        try:
            validate_server_event(event)
        except Exception as exc:  # noqa: BLE001 - collected, asserted by the tests
            self.invalid.append(f"{event.get('type')}: {exc}")

    async def _drain(self, track) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            data = frame.to_ndarray().astype(np.float32).reshape(-1) / 32768
            rms = float(np.sqrt(np.mean(data * data)))
            self.frames.append((time.monotonic(), 20 * np.log10(rms) if rms > 1e-6 else -120.0))

    def send(self, event: dict) -> None:
        self.dc.send(json.dumps(event))

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def wait_for(self, kind: str, timeout: float = 10.0, after: int = 0, **match) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events[after:]:
                if event["type"] == kind and all(_get(event, k) == v for k, v in match.items()):
                    return event
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind} {match or ''} within {timeout}s; got {self.types()[-15:]}")

    def loud_frames(self, since: float = 0.0, level: float = -45.0) -> int:
        return sum(1 for t, db in self.frames if t >= since and db > level)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.pc:
            await self.pc.close()
        await self.http.close()


def _get(event: dict, dotted: str):
    value = event
    for part in dotted.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value
