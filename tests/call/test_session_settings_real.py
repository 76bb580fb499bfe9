"""Issue #20 item 6 on a real call: the F10 settings go to the agent in one session.update
and the agent's session holds them; the voice only until Sandra's first reply (the API locks
it), after which the rest still applies."""

import asyncio

from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, ErrorEvent
from sandra_tui.config.model import SessionConfig
from tests.call.test_controller import Recorder, leak_check, make_config  # noqa: F401 - leak_check: fixture


async def agent_session(agent_server, predicate, timeout=10.0) -> dict:
    for _ in range(int(timeout / 0.05)):
        calls = list(agent_server.calls.values())
        if calls and predicate(calls[0].agent.session):
            return calls[0].agent.session
        await asyncio.sleep(0.05)
    raise AssertionError(f"the agent's session never matched: {calls[0].agent.session if calls else None}")


async def test_settings_apply_at_once_and_the_voice_only_before_the_first_reply(agent_server, leak_check):  # noqa: F811
    controller = CallController(make_config(agent_server.url))
    rec = Recorder(controller)
    try:
        await controller.start()
        await rec.wait_state(CallState.CONNECTED)
        said = await controller.update_session(SessionConfig(
            voice="cedar", turn_detection="semantic_vad", eagerness="high", noise_reduction="far_field",
            transcription_language="en"))
        assert said == "Applied now."
        audio_in = (await agent_session(agent_server, lambda s: s["audio"]["output"]["voice"] == "cedar"))[
            "audio"]["input"]
        assert audio_in["turn_detection"]["type"] == "semantic_vad" and audio_in["turn_detection"]["eagerness"] == "high"
        assert audio_in["noise_reduction"] == {"type": "far_field"}
        assert audio_in["transcription"]["language"] == "en"

        await controller.send_text("hello")
        for _ in range(200):
            if controller.voice_locked:
                break
            await asyncio.sleep(0.05)
        assert controller.voice_locked
        said = await controller.update_session(SessionConfig(voice="marin", vad_threshold=0.8,
                                                             vad_silence_duration_ms=900))
        assert said.startswith("Applied now; the voice from the next call")
        session = await agent_session(agent_server, lambda s: s["audio"]["input"]["turn_detection"]["type"]
                                      == "server_vad")
        turn = session["audio"]["input"]["turn_detection"]
        assert (turn["threshold"], turn["silence_duration_ms"]) == (0.8, 900)
        assert session["audio"]["output"]["voice"] == "cedar"  # not sent: the API would refuse it
        assert controller.config.session.voice == "marin"  # kept for the next call
        assert not [e for e in rec.events if isinstance(e, ErrorEvent)]
    finally:
        await controller.close()
