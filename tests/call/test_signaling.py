"""Signaling against real HTTP on loopback, and SDP answer normalisation with real aiortc peers."""

import asyncio
import re

import aiohttp
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from sandra_tui.call import signaling
from sandra_tui.call.signaling import SignalingError, Token
from sandra_tui.config.model import BackendConfig
from tests.helpers import serve_routes

BACKEND = BackendConfig(request_timeout_s=2)


async def serve(handler):
    return await serve_routes(("*", "/{tail:.*}", handler))


@pytest.mark.parametrize(
    "status,headers,body,reason,retryable,retry_after",
    [
        (401, {}, {"error": {"message": "bad key"}}, "credentials_rejected", False, None),
        (403, {}, {"error": {"message": "nope"}}, "credentials_rejected", False, None),
        (429, {"Retry-After": "3"}, {"error": {"message": "slow down"}}, "rate_limited", True, 3.0),
        (500, {}, "oops", "server_error", True, None),
        (503, {"Retry-After": "2"}, "busy", "server_error", True, 2.0),
        (404, {}, "missing", "signaling_error", False, None),
        (400, {}, {"error": {"message": "bad request"}}, "signaling_error", False, None),
        (409, {}, {"error": {"message": "slot held"}}, "signaling_error", True, None),
    ],
)
async def test_token_errors_are_classified(status, headers, body, reason, retryable, retry_after):
    async def handler(request):
        if isinstance(body, dict):
            return web.json_response(body, status=status, headers=headers)
        return web.Response(text=body, status=status, headers=headers)

    runner, url = await serve(handler)
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(SignalingError) as info:
                await signaling.fetch_token(http, url, BACKEND)
    finally:
        await runner.cleanup()
    assert info.value.reason == reason
    assert info.value.retryable is retryable
    assert info.value.retry_after_s == retry_after
    assert str(status) in str(info.value)


async def test_token_garbage_json():
    async def handler(request):
        return web.Response(text="{not json", content_type="application/json")

    runner, url = await serve(handler)
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(SignalingError, match="malformed"):
                await signaling.fetch_token(http, url, BACKEND)
    finally:
        await runner.cleanup()


async def test_token_ok_resolves_relative_realtime_url_and_hides_key():
    async def handler(request):
        return web.json_response({"value": "ek_supersecretvalue", "expires_at": 1e10,
                                  "realtime_url": "/v1/realtime/calls", "model": "m", "session_id": "s1",
                                  "ice_servers": []})

    runner, url = await serve(handler)
    try:
        async with aiohttp.ClientSession() as http:
            token = await signaling.fetch_token(http, url, BACKEND)
    finally:
        await runner.cleanup()
    assert token.realtime_url == url + "/v1/realtime/calls"
    assert "ek_supersecretvalue" not in repr(token)


async def test_backend_down_is_retryable():
    async with aiohttp.ClientSession() as http:
        with pytest.raises(SignalingError) as info:
            await signaling.fetch_token(http, "http://127.0.0.1:9", BACKEND)
    assert info.value.reason == "backend_unreachable" and info.value.retryable


async def test_sdp_exchange_rejects_non_sdp():
    async def handler(request):
        return web.Response(text="<html>proxy error</html>", status=201)

    runner, url = await serve(handler)
    token = Token("ek_x", 0, url + "/v1/realtime/calls")
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(SignalingError, match="not SDP"):
                await signaling.exchange_sdp(http, token, "v=0\r\n", 2)
    finally:
        await runner.cleanup()


def _strip_ice_from_later_sections(sdp: str) -> str:
    """Reshape an answer like the one in OpenAI's docs: ICE/DTLS attributes in the first m-section only."""
    parts = re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)
    head, first, rest = parts[0], parts[1], parts[2:]
    cleaned = [re.sub(r"^a=(ice-ufrag|ice-pwd|setup|fingerprint):.*\r?\n", "", p, flags=re.MULTILINE) for p in rest]
    return head + first + "".join(cleaned)


async def test_normalised_docs_shaped_answer_connects():
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        offerer.createDataChannel("oai-events")
        offerer.addTransceiver("audio", direction="sendrecv")
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        shaped = _strip_ice_from_later_sections(answerer.localDescription.sdp)
        assert shaped.count("a=ice-ufrag") == 1
        with pytest.raises(ValueError):
            probe = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            try:
                probe.createDataChannel("oai-events")
                probe.addTransceiver("audio", direction="sendrecv")
                await probe.setLocalDescription(await probe.createOffer())
                await probe.setRemoteDescription(RTCSessionDescription(shaped, "answer"))
            finally:
                await probe.close()
        fixed = signaling.normalize_answer(shaped)
        assert fixed.count("a=ice-ufrag") == 2
        await offerer.setRemoteDescription(RTCSessionDescription(fixed, "answer"))
        for _ in range(100):
            if offerer.connectionState == "connected":
                break
            await asyncio.sleep(0.05)
        assert offerer.connectionState == "connected"
    finally:
        await offerer.close()
        await answerer.close()


def test_end_of_candidates_detection():
    assert signaling.has_end_of_candidates("v=0\r\nm=audio 9 UDP 0\r\na=end-of-candidates\r\n")
    assert not signaling.has_end_of_candidates("v=0\r\nm=audio 9 UDP 0\r\n")
