"""Fixtures of the agent server tests. The shared `agent_server` fixture (the real app,
in-process, faults on) lives in tests/conftest.py; tests/agent_server.py has AgentServer and
ServeProcess; tests/rtc_client.py the plain aiortc client."""

from __future__ import annotations

import pytest

from tests.rtc_client import RawClient


async def configure(client: RawClient, transcription: bool = True, **turn_detection) -> dict:
    """session.update as the TUI sends it: server VAD (overrides in turn_detection), transcription."""
    td = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 300,
          "create_response": True, "interrupt_response": True, **turn_detection}
    session = {"type": "realtime", "audio": {"input": {"turn_detection": td}}}
    if transcription:
        session["audio"]["input"]["transcription"] = {"model": "whisper-1"}
    n = len(client.events)
    client.send({"type": "session.update", "session": session})
    return await client.wait_for("session.updated", after=n)


@pytest.fixture
async def client(agent_server):
    """A connected plain aiortc client (session.created received)."""
    c = RawClient(agent_server.url)
    try:
        await c.connect()
        await c.wait_for("session.created")
        yield c
    finally:
        await c.close()
