"""The baseline: a straightforward aiortc softphone configured the way the product guide says.

ICE servers in the order given (the guide's seven), aiortc defaults everywhere (its own jitter
buffer, no probe, no watchdog), and a reconnect only when ICE reports "failed", as the guide's
widget does. aiortc turns a silently dead peer into "closed" after its ~30 s consent check, so
this client never notices some failures at all. It is the yardstick, not a product.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import json
import time

import av

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack


class NaiveMic(MediaStreamTrack):
    """The microphone as a straightforward softphone does it: PortAudio defaults, an asyncio
    queue, 20 ms frames."""

    kind = "audio"

    def __init__(self) -> None:
        import sounddevice as sd

        super().__init__()
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._pts = 0
        self._stream = sd.InputStream(samplerate=48000, channels=1, dtype="int16", blocksize=960,
                                      callback=lambda data, *_: loop.call_soon_threadsafe(
                                          self._queue.put_nowait, data[:, 0].copy()))
        self._stream.start()

    async def recv(self):
        samples = await self._queue.get()
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self._pts, fractions.Fraction(1, 48000)
        self._pts += len(samples)
        return frame

    def stop(self) -> None:
        super().stop()
        self._stream.close()


class NaiveSpeaker:
    """Decoded frames straight into a PortAudio output stream with default latency: whatever
    delay aiortc's jitter buffer adds stays."""

    def __init__(self) -> None:
        import sounddevice as sd

        self._pending: collections.deque = collections.deque()
        self._stream = sd.OutputStream(samplerate=48000, channels=1, dtype="int16", blocksize=960,
                                       callback=self._fill)
        self._stream.start()

    def write(self, samples: np.ndarray) -> None:
        self._pending.append(samples)

    def _fill(self, outdata, frames, *_):
        block = self._pending.popleft() if self._pending else np.zeros(frames, dtype=np.int16)
        outdata[:, 0] = block[:frames] if len(block) >= frames else np.pad(block, (0, frames - len(block)))

    def close(self) -> None:
        self._stream.close()


class BaselineClient:
    def __init__(self, backend_url: str, ice_urls: list[str], devices: bool = False) -> None:
        self.devices = devices
        self.speaker: NaiveSpeaker | None = None
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
        if self.devices:
            self.speaker = NaiveSpeaker()
        pc.addTrack(NaiveMic() if self.devices else AudioStreamTrack())
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
            if self.speaker is not None:
                self.speaker.write(frame.to_ndarray().reshape(-1)[::2].copy())  # stereo s16 -> mono
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
        if self.speaker is not None:
            self.speaker.close()
        await self.http.close()


async def _hold(url: str, seconds: float, devices: bool = False) -> None:
    client = BaselineClient(url, [], devices=devices)
    await client.connect()
    await asyncio.sleep(seconds)
    await client.close()


if __name__ == "__main__":  # python -m bench.baseline URL SECONDS [--devices]: hold one call
    import sys

    from sandra_tui.shims.aioice import loopback_from_here

    loopback_from_here()  # asyncio.run's task inherits it
    asyncio.run(_hold(sys.argv[1], float(sys.argv[2]), "--devices" in sys.argv[3:]))
