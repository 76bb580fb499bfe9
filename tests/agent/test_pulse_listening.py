"""The local agent hears the operator on the real path: espeak-ng speaks into the client's
microphone (a PulseAudio null sink), the client sends Opus, the agent recognises the words.
Word error rate over 20 phrases; "what time is it" answered aloud with the time and its
transcript in the client's history; no turn detected from Sandra's own voice looped back into
the microphone with the echo canceller on."""

from __future__ import annotations

import asyncio
import re
import time

import numpy as np
import pytest

from sandra_tui.call.events import Transcript
from sandra_tui.server import asr
from tests.agent.speech import spoken, wer
from tests.audio.test_call_audio import Call as AudioCall
from tests.conftest import require

PHRASES = [
    "what time is it", "hello sandra", "good morning", "who are you", "what is the date today",
    "can you help me", "check booking one two three four", "check booking five six seven eight",
    "repeat after me the weather is nice today", "thank you very much",
    "i would like to book a room for two people", "cancel my reservation", "what day is it today",
    "tell me the time please", "can you hear me now", "i will arrive tomorrow morning",
    "how much does it cost", "my name is maria", "is the hotel open today", "goodbye",
]


class Call(AudioCall):
    async def __aenter__(self) -> "Call":
        await super().__aenter__()
        await asyncio.sleep(0.5)
        return self

    def finals(self, role: str) -> list[str]:
        return [e.text for _, e in self.events if isinstance(e, Transcript) and e.role == role and e.final]


async def play(pulse, samples: np.ndarray) -> None:
    proc = pulse.play_into_mic(samples, latency_ms=500)
    await asyncio.to_thread(proc.wait, 120)


def words_of(transcript: str) -> str:
    return "" if transcript.startswith("[") else transcript.lower()


@pytest.fixture(autouse=True)
def _recogniser():
    require(asr.available(), "pocketsphinx (pip install pocketsphinx)")


async def test_word_error_rate_of_twenty_phrases_through_the_microphone(pulse, agent_server):
    gap = np.zeros(int(48000 * 1.2), dtype=np.int16)  # > the 500 ms of silence that ends a turn
    audio = np.concatenate([np.concatenate([spoken(p, peak_dbfs=-8), gap]) for p in PHRASES])
    async with Call(agent_server) as call:
        started = time.monotonic()
        await play(pulse, audio)
        await call.wait(lambda: len(call.finals("user")) >= len(PHRASES), 15)
        wall = time.monotonic() - started
        agent = next(iter(agent_server.calls.values())).agent
        heard = [words_of(t) for t in call.finals("user")]
    rate = wer(PHRASES, heard) if len(heard) == len(PHRASES) else wer([" ".join(PHRASES)], [" ".join(heard)])
    audio_s = len(audio) / 48000
    print(f"WER {rate:.1%} over {len(PHRASES)} phrases ({sum(len(p.split()) for p in PHRASES)} words); "
          f"recognition {agent.asr.cpu_s / audio_s:.1%} and VAD {agent.vad_cpu_s / audio_s:.2%} of a core "
          f"over {audio_s:.0f} s of audio ({wall:.0f} s wall)")
    for ref, hyp in zip(PHRASES, heard):
        if ref != hyp:
            print(f"  {ref!r} -> {hyp!r}")
    assert len(heard) == len(PHRASES)  # one turn per phrase
    assert rate < 0.25
    assert agent.tool_calls >= 1  # the booking phrases ran the demo function


async def test_what_time_is_it_is_answered_aloud_with_the_time(pulse, agent_server):
    rec = pulse.recorder()
    try:
        async with Call(agent_server) as call:
            await play(pulse, spoken("what time is it", peak_dbfs=-8))
            await call.wait(lambda: call.speech("reply_stopped"), 20)
            answer = call.finals("assistant")[-1]
            replied_at = call.speech("reply_started")[0]
            await asyncio.sleep(0.3)
            history = [(m.role, m.content) for m in call.controller.history.messages()]
    finally:
        rec.stop()
    clock = re.search(r"It is (\d\d):(\d\d)\.", answer)
    assert clock, answer
    now = time.localtime()
    assert abs((int(clock[1]) * 60 + int(clock[2])) - (now.tm_hour * 60 + now.tm_min)) % 1440 <= 2
    assert ("user", "what time is it") in history  # the operator's words, in the client's transcript
    assert ("assistant", answer) in history
    assert len([t for t in rec.loud_times(-30) if t >= replied_at]) > 40  # spoken: > 0.4 s on the speaker


async def false_starts(agent_server, echo_cancellation: bool) -> tuple[int, float]:
    """Turns the agent detects while Sandra speaks a long typed reply (help) into the loop."""
    async with Call(agent_server, echo_cancellation=echo_cancellation) as call:
        await call.controller.send_text("help")
        await call.wait(lambda: call.speech("reply_started"), 15)
        started = call.speech("reply_started")[0]
        await call.wait(lambda: call.speech("reply_stopped") or call.speech("reply_cancelled"), 30)
        spoke = time.monotonic() - started
        print("false starts at", [round(t - started, 2) for t in call.speech("user_started")], "s into the reply")
        return len(call.speech("user_started")), spoke


async def test_no_turn_from_sandras_own_voice_with_the_echo_canceller_on(pulse, agent_server, acoustic_loop):
    with_aec, spoke = await false_starts(agent_server, True)
    without, _ = await false_starts(agent_server, False)
    print(f"VAD false starts on Sandra's own voice ({spoke:.1f} s of it): {with_aec} with the echo canceller, "
          f"{without} without")
    assert without >= 1  # the loop really brings her voice back to the microphone
    assert with_aec == 0
