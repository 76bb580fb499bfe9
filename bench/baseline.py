"""The baseline: a straightforward aiortc softphone configured the way the product guide says.

ICE servers in the order given (the guide's seven), aiortc defaults everywhere (its own jitter
buffer, no probe, no watchdog), and a reconnect only when ICE reports "failed", as the guide's
widget does. aiortc turns a silently dead peer into "closed" after its ~30 s consent check, so
this client never notices some failures at all. It is the yardstick, not a product.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError


class BaselineClient:
    def __init__(self, backend_url: str, ice_urls: list[str]) -> None:
        self.backend_url = backend_url
        self.ice_urls = ice_urls
        self.pc: RTCPeerConnection | None = None
        self.dc = None
        self.http = aiohttp.ClientSession()
        self.ice_failed = asyncio.Event()
        self.state_changes: list[tuple[float, str]] = []
        self.loud_at: list[float] = []
        self._drain: asyncio.Task | None = None

    async def connect(self) -> None:
        async with self.http.post(self.backend_url + "/api/sandra/token", json={}) as r:
            token = await r.json()
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(urls=u) for u in self.ice_urls]))
        self.dc = pc.createDataChannel("oai-events")
        pc.addTrack(AudioStreamTrack())
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def _state() -> None:
            self.state_changes.append((time.monotonic(), pc.connectionState))
            if pc.connectionState == "connected":
                connected.set()

        @pc.on("iceconnectionstatechange")
        def _ice() -> None:
            if pc.iceConnectionState == "failed":
                self.ice_failed.set()

        @pc.on("track")
        def _track(track) -> None:
            self._drain = asyncio.ensure_future(self._consume(track))

        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Authorization": f"Bearer {token['value']}", "Content-Type": "application/sdp"}
        async with self.http.post(token["realtime_url"], data=pc.localDescription.sdp, headers=headers) as r:
            answer = await r.text()
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await connected.wait()
        opened = asyncio.Event()
        if self.dc.readyState == "open":
            opened.set()
        self.dc.on("open", opened.set)
        await opened.wait()

    async def _consume(self, track) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            data = frame.to_ndarray().astype(np.float32) / 32768
            if float(np.sqrt(np.mean(data * data))) > 0.003:  # about -50 dBFS
                self.loud_at.append(time.monotonic())

    def say(self, text: str) -> None:
        self.dc.send(json.dumps({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}))
        self.dc.send(json.dumps({"type": "response.create"}))

    async def close(self) -> None:
        if self._drain:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        if self.pc:
            await self.pc.close()
        await self.http.close()


async def _hold(url: str, seconds: float) -> None:
    client = BaselineClient(url, [])
    await client.connect()
    await asyncio.sleep(seconds)
    await client.close()


if __name__ == "__main__":  # python -m bench.baseline URL SECONDS: hold one call (resource benchmark)
    import sys

    from sandra_tui.protocol.loopback import pin_host_candidates_to_loopback

    pin_host_candidates_to_loopback()
    asyncio.run(_hold(sys.argv[1], float(sys.argv[2])))
