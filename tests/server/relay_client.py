"""The plain aiortc test client, for answers shaped like OpenAI's (through the relay): no
a=end-of-candidates, ICE/DTLS attributes only in the first m-section (which aiortc needs in
every section, so they are copied over, as the protocol notes say)."""

from __future__ import annotations

import asyncio
import re
import time

from aiortc import RTCSessionDescription

from tests.rtc_client import RawClient

SESSION_ATTRS = re.compile(r"^a=(ice-ufrag|ice-pwd|setup|fingerprint):.*$", re.MULTILINE)


def copy_session_attrs(sdp: str) -> str:
    parts = re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)
    if len(parts) <= 2:
        return sdp
    first = [m.group(0) for m in SESSION_ATTRS.finditer(parts[1])]
    out = parts[:2]
    for part in parts[2:]:
        if not SESSION_ATTRS.search(part):
            lines = part.rstrip("\r\n").split("\r\n")
            part = "\r\n".join(lines[:1] + first + lines[1:]) + "\r\n"
        out.append(part)
    return "".join(out)


class RelayClient(RawClient):
    answer = ""
    timings: dict[str, float]

    async def connect(self, token_body: dict | None = None, token: dict | None = None) -> None:
        """With `token` (a token reply got elsewhere), no token request is made."""
        t0 = time.monotonic()
        self.timings = {}
        self.token = token
        if token is None:
            await self.get_token(token_body)
        self.timings["token_ms"] = (time.monotonic() - t0) * 1000
        opened = await self.offer()
        t1 = time.monotonic()
        self.answer = await self.post_offer()
        self.timings["sdp_ms"] = (time.monotonic() - t1) * 1000
        await self.pc.setRemoteDescription(RTCSessionDescription(copy_session_attrs(self.answer), "answer"))
        await asyncio.wait_for(opened.wait(), 10)
        self.timings["connect_ms"] = (time.monotonic() - t0) * 1000
