"""Real Chromium (Debian `chromium`, headless, fake media devices) does the browser widget's flow
against `serve --upstream openai` pointed at tests/fake_openai.py: a same-origin page (served by
`serve --faults` from SANDRA_TEST_PAGES) gets a token from /api/sandra/token, posts its offer
to the backend's /v1/realtime/calls, applies the relayed answer (OpenAI's layout, no
end-of-candidates), and audio flows both ways; the page reports its getStats() figures to a
small HTTP endpoint of the test. No driver library: the page reports by itself."""

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

from aiohttp import web

from tests.agent_server import ServeProcess
from tests.conftest import require
from tests.fake_openai import STANDARD_KEY, FakeOpenAI
from tests.helpers import serve_routes
from tests.server.helpers import discard

PAGES = Path(__file__).parent
SECONDS = 4  # of call before the page reads its stats; 50 packets/s each way


def chromium_args(user_data_dir: str, url: str) -> list[str]:
    return [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={user_data_dir}", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--allow-loopback-in-peer-connection", "--webrtc-ip-handling-policy=default_public_interface_only",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--autoplay-policy=no-user-gesture-required",
            url]


async def test_chromium_widget_through_the_relay(tmp_path):
    require(shutil.which("chromium") is not None, "Chromium (apt install chromium)")
    fake = await FakeOpenAI().start()
    reports: asyncio.Queue = asyncio.Queue()

    async def report(request: web.Request) -> web.Response:
        await reports.put(json.loads(await request.text()))
        return web.Response(text="ok", headers={"Access-Control-Allow-Origin": "*"})

    runner, report_url = await serve_routes(("POST", "/report", report))
    serve = ServeProcess("--upstream", "openai", "--faults", env={
        "OPENAI_API_KEY": STANDARD_KEY, "SANDRA_OPENAI_BASE_URL": fake.url, "SANDRA_TEST_PAGES": str(PAGES),
        "SANDRA_SECRET": "chromium-test-secret-0123456789"})
    profile = tempfile.mkdtemp(prefix="sandra-chromium-")
    browser = None
    try:
        await asyncio.to_thread(serve.start)
        page = f"{serve.url}/_test/widget.html?seconds={SECONDS}&report={report_url}/report"
        browser = await asyncio.create_subprocess_exec(*chromium_args(profile, page), stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
        # bound: Chromium start (~1-3 s, more under load) + the call's SECONDS + hang-up
        got = await asyncio.wait_for(reports.get(), 60)
        calls_at_fake = [s for s in fake.seen if s.path == "/v1/realtime/calls"]
    finally:
        if browser is not None and browser.returncode is None:
            browser.kill()
            await browser.wait()
        serve.stop()
        output = serve.output()
        discard(serve)
        await runner.cleanup()
        await fake.stop()
        shutil.rmtree(profile, ignore_errors=True)
    relay_line = next((line for line in output.splitlines() if "relayed to the upstream" in line), "")
    print(f"\nchromium: {json.dumps({k: got.get(k) for k in ('timings', 'inbound', 'outbound')})}\n{relay_line}\n"
          f"of which the fake's own aiortc answer: {fake.answer_ms[0]:.0f} ms")
    assert "error" not in got, got["error"]
    assert got["token_status"] == 200 and got["realtime_url"] == serve.url + "/v1/realtime/calls"
    assert got["key_prefix"] == "ek_sandra_" and got["answer_status"] == 201
    assert got["answer_has_end_of_candidates"] is False  # relayed in OpenAI's layout, and Chromium copes
    assert got["connection_state"] == "connected" and "session.created" in got["events"]
    # both ways, counted: ~50 packets/s each way for SECONDS; half is plenty under load
    assert got["outbound"]["packets"] >= 25 * SECONDS and got["inbound"]["packets"] >= 25 * SECONDS, got
    assert got["inbound"]["bytes"] > 0 and got["outbound"]["bytes"] > 0
    assert got["hangup_status"] == 200 and len(fake.hangups) == 1
    (post,) = calls_at_fake
    assert post.auth == f"Bearer {STANDARD_KEY}" and set(post.parts) == {"sdp", "session"}
    (frames_at_fake,) = fake.frames_at_hangup.values()
    assert frames_at_fake >= 25 * SECONDS  # Chromium's audio decoded at "OpenAI"
    assert STANDARD_KEY not in output
