"""Issue #20 items 5 and 7 on a real spoken turn: the operator's speech (espeak-ng) goes from a
real aiortc peer to the agent over loopback; the agent's VAD ends it, its recogniser hears a
booking check, it runs the demo function and answers. The controller reports the turn's
latency split (server + client = total) and the tool call (name, arguments, result, duration)."""

import asyncio
import wave

import numpy as np

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.sources import WavFileSource
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, LatencySample, ToolCall
from tests.agent.speech import RATE, spoken
from tests.call.test_controller import Recorder, leak_check, make_config  # noqa: F401 - leak_check: fixture


def speech_file(path, text: str) -> None:
    quiet = np.zeros(int(RATE * 0.6), dtype=np.int16)
    samples = np.concatenate([quiet, spoken(text), np.zeros(int(RATE * 2.0), dtype=np.int16)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())


async def test_a_spoken_turn_reports_its_latency_split_and_the_tool_call(agent_server, tmp_path, leak_check):  # noqa: F811
    speech_file(tmp_path / "mic.wav", "check booking one two three four")
    controller = CallController(make_config(agent_server.url),
                                audio=AudioEngine(WavFileSource(str(tmp_path / "mic.wav"))))
    rec = Recorder(controller)
    try:
        await controller.start()
        await rec.wait_state(CallState.CONNECTED)
        for _ in range(400):  # the file is 5 s; the reply follows the end of the speech
            names = {e.name for e in rec.events if isinstance(e, LatencySample)}
            if {"response_latency", "turn_server", "turn_client"} <= names and any(
                    isinstance(e, ToolCall) and e.status == "done" for e in rec.events):
                break
            await asyncio.sleep(0.05)
    finally:
        await controller.close()
    samples = {e.name: e.ms for e in rec.events if isinstance(e, LatencySample)}
    tools = [e for e in rec.events if isinstance(e, ToolCall) and e.status == "done"]
    print(f"turn: total {samples.get('response_latency')} ms = server {samples.get('turn_server')} "
          f"+ client {samples.get('turn_client')}; tools {tools}")
    assert {"response_latency", "turn_server", "turn_client"} <= set(samples)
    assert samples["turn_server"] > 0 and samples["turn_client"] >= 0
    assert abs(samples["turn_server"] + samples["turn_client"] - samples["response_latency"]) < 1.0
    assert len(tools) == 1 and tools[0].name == "check_booking" and "1234" in tools[0].arguments
    assert tools[0].result and tools[0].duration_ms >= 0
    shown = [m.content for m in controller.history.messages() if m.role == "tool"]
    assert shown and shown[0].startswith("check_booking(") and "->" in shown[0] and " ms]" in shown[0]
