"""The local Sandra: an honest stand-in that speaks the OpenAI Realtime protocol.

Per call: a VAD on the caller's audio (vad.py), speech recognition of each turn with
PocketSphinx (asr.py: transcription deltas while the caller speaks, the words at the end),
a reply to what was said from a small table of intents (intents.py; "check booking N" runs a
demo function call, tools.py), spoken with espeak-ng (or the caller's own audio when espeak-ng
is missing), typed messages answered the same way, and barge-in. In echo mode (the
`agent_mode` fault, `serve --agent-mode echo`, or session instructions "echo") the reply is
the caller's own speech, played back right after speech_stopped: a round-trip latency probe.

Event names and shapes follow the GA Realtime API; the tests validate every event against
the openai SDK's models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque

import numpy as np
from aiortc.mediastreams import MediaStreamError

from sandra_tui.wire.realtime import SESSION_EXPIRED
from sandra_tui.server import asr, intents
from sandra_tui.server.agent_events import ClientEvents
from sandra_tui.server.agent_replies import Replies
from sandra_tui.server.agent_session import BadEvent, default_session, new_id  # noqa: F401 - re-exported
from sandra_tui.server.audio_track import FRAME, SAMPLE_RATE, AgentAudioTrack
from sandra_tui.server.faults import Faults
from sandra_tui.server.rate_window import RateWindow
from sandra_tui.server.vad import BARGE_IN_FRAMES, FRAME_MS, MAX_ONSET_SPAN, ONSET_FRAMES, Vad
from sandra_tui.shims import aiortc as aiortc_shim

log = logging.getLogger("sandra_tui.server.agent")
MAX_UTTERANCE_S = 60  # the input buffer keeps at most this much audio (older audio is dropped)
MAX_ITEMS = 500  # conversation items remembered per call
MIRROR_EDGE_PEAK = 1000  # about -30 dBFS: the start of a click
MAX_LOGGED_ERRORS = 5  # error events logged per call (a misbehaving client cannot flood the log)
ECHO_TAIL_S = 0.6  # after her audio leaves: the caller's playout (up to ~300 ms) and the room
RECOGNITION_WAIT_S = 5.0  # the final words of a turn, at most (the decoder is a few ms behind)
# Events beyond sandra_tui.wire.realtime.SERVER_EVENTS that this agent now emits.
NEW_SERVER_EVENTS = frozenset({"conversation.item.input_audio_transcription.delta",
                               "response.function_call_arguments.delta", "response.function_call_arguments.done"})


class LocalAgentCall(Replies, ClientEvents):
    """The conversation side of one call; the peer connection is owned by calls.CallRegistry."""

    def __init__(self, call_id: str, faults: Faults, model: str, voice: str) -> None:
        self.call_id = call_id
        self.faults = faults
        self.session = default_session(model, voice)
        self.track = AgentAudioTrack()
        self.track.on_started = self._on_audio_started
        self.track.on_drained = self._on_audio_drained
        self.vad = Vad()
        self.dc = None
        self.tasks: set[asyncio.Task] = set()
        self.last_rx = time.monotonic()
        self.frames_in = 0
        self.errors = 0
        self.turns = 0
        self.tool_calls = 0
        self.vad_cpu_s = 0.0  # CPU time (this thread's) the VAD took, for the cost figures
        self.echo_session = False  # session instructions "echo"
        self._mirror_loud = False
        self._prefix: deque[np.ndarray] = deque(maxlen=self._prefix_frames())
        self._utterance: deque[np.ndarray] = deque(maxlen=MAX_UTTERANCE_S * 1000 // FRAME_MS)
        self._speech_frames = 0  # frames of the utterance that came after the prefix padding
        self._user_item: str | None = None
        self._last_item: str | None = None
        self._items: OrderedDict[str, dict] = OrderedDict()  # the conversation, for truncate/delete/retrieve
        self._reply: dict | None = None  # the response in progress
        self._reply_task: asyncio.Task | None = None
        self.rate_window = RateWindow()  # what rate_limits.updated reports for this call
        self._audio_reply: dict | None = None  # the reply whose audio is leaving now
        self._echo_until = 0.0  # till then Sandra's voice may still come back from the caller's room
        self._pending_text = ""
        self._pending_turn: tuple | None = None  # a turn committed without create_response, for response.create
        self._heard = ""  # transcription deltas sent for the turn in progress
        model_ = asr.shared_model()
        self.asr = asr.Recognizer(model_, self._on_partial) if model_ is not None else None
        self.on_session_started = None  # called once session.created is sent (the session's clock starts)

    @property
    def mode(self) -> str:
        return "echo" if self.echo_session else self.faults.agent_mode

    # -- plumbing --------------------------------------------------------------------------------
    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"{name}-{self.call_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def send(self, kind: str, **fields) -> None:
        if self.dc is None or self.dc.readyState != "open":
            return
        event = {"event_id": new_id("event"), "type": kind, **fields}
        try:
            self.dc.send(json.dumps(event))
        except Exception:  # noqa: BLE001 - the channel closed under us: the call is ending
            pass

    def error(self, message: str, code: str, event_id: str | None = None, param: str | None = None) -> None:
        self.errors += 1
        if self.errors <= MAX_LOGGED_ERRORS:  # the rest are counted in the call's closing line
            log.info("call %s: error event %s: %s", self.call_id, code, message[:200])
        self.send("error", error={"type": "invalid_request_error", "code": code, "message": message,
                                  "param": param, "event_id": event_id})

    def attach_channel(self, dc) -> None:
        self.dc = dc

        @dc.on("message")
        def _message(raw) -> None:
            self.on_client_event(raw)

        if dc.readyState == "open":
            self._greet()
        else:
            dc.on("open", self._greet)

    def _greet(self) -> None:
        self.send("session.created", session=self.session)
        if self.on_session_started is not None:
            self.on_session_started()
            self.on_session_started = None

    async def expire(self, max_s: float) -> None:
        """The session hit its maximum length: the `error` event OpenAI sends at 60 minutes,
        then wait (at most 2 s) until the peer has acknowledged it, since closing the peer
        connection aborts SCTP and would drop it."""
        length = f"{max_s / 60:g} minutes" if max_s % 60 == 0 else f"{max_s:g} seconds"
        self.error(f"Your session hit the maximum duration of {length}.", SESSION_EXPIRED)
        deadline = time.monotonic() + 2.0
        while self.dc is not None and self.dc.readyState == "open" and time.monotonic() < deadline:
            if not self.dc.bufferedAmount and not aiortc_shim.sctp_unacknowledged(self.dc.transport):
                return
            await asyncio.sleep(0.02)

    def _remember(self, item: dict) -> None:
        self._items[item["id"]] = item
        self._items.move_to_end(item["id"])
        while len(self._items) > MAX_ITEMS:
            self._items.popitem(last=False)

    async def consume(self, track) -> None:
        """Read the caller's audio: VAD, utterance capture, liveness."""
        while True:
            try:
                frame = await track.recv()
            except (MediaStreamError, asyncio.CancelledError):
                return
            self.last_rx = time.monotonic()
            self.frames_in += 1
            if frame.sample_rate != SAMPLE_RATE:
                continue
            samples = _mono(frame)
            for start in range(0, len(samples) - FRAME + 1, FRAME):
                self.on_input_frame(samples[start : start + FRAME])

    # -- audio in --------------------------------------------------------------------------------
    def _turn_detection(self) -> dict | None:
        return self.session["audio"]["input"].get("turn_detection")

    def _prefix_frames(self) -> int:
        return self.vad.prefix_padding_ms // FRAME_MS + MAX_ONSET_SPAN  # + the frames of the onset

    def _resize_prefix(self) -> None:
        self._prefix = deque(self._prefix, maxlen=self._prefix_frames())

    def _recognising(self) -> bool:
        return self.asr is not None and self.mode != "echo"

    def on_input_frame(self, samples: np.ndarray) -> None:
        """One 20 ms frame of the caller's audio, mono int16 at 48 kHz."""
        if self.mode == "mirror":
            self._mirror(samples)
            return
        if not self._turn_detection():
            self._utterance.append(samples)  # manual turns: input_audio_buffer.commit ends them
            self._speech_frames += 1
            return
        now = time.monotonic()
        if self._audio_reply is not None:
            self._echo_until = now + ECHO_TAIL_S
        self.vad.onset_frames = BARGE_IN_FRAMES if now < self._echo_until else ONSET_FRAMES
        started = time.thread_time()
        event = self.vad.feed(samples)
        self.vad_cpu_s += time.thread_time() - started
        if self.vad.speaking or (event and event.kind == "speech_stopped"):
            self._utterance.append(samples)
            self._speech_frames += 1
            if self.vad.speaking and event is None and self._recognising():
                self.asr.feed(samples)
        else:
            self._prefix.append(samples)
        if event is None:
            return
        if event.kind == "speech_started":
            self._user_item = new_id("item")
            # the frames that triggered the VAD went to the prefix: the speech starts onset frames back
            onset = self.vad.onset_span
            lead = (list(self._prefix) + list(self._utterance))[-(self.vad.prefix_padding_ms // FRAME_MS + onset):]
            self._utterance.clear()
            self._utterance.extend(lead)
            self._speech_frames = min(len(lead), onset)
            self._prefix.clear()
            self._heard = ""
            if self._recognising():
                self.asr.begin(lead)
            self.send("input_audio_buffer.speech_started", audio_start_ms=event.ms, item_id=self._user_item)
            if self._reply is not None and self._turn_detection().get("interrupt_response", True):
                self._cancel_reply("barge-in", "turn_detected")
        else:
            self.send("input_audio_buffer.speech_stopped", audio_end_ms=event.ms, item_id=self._user_item)
            # drop the trailing silence that ended the turn
            self._speech_frames = min(self._speech_frames, len(self._utterance))
            quiet = min(self.vad.silence_duration_ms // FRAME_MS, self._speech_frames - 1)
            for _ in range(max(0, quiet)):
                self._utterance.pop()
                self._speech_frames -= 1
            self._commit_utterance()

    def _on_partial(self, text: str) -> None:
        """The hypothesis so far: send the words that the next audio can no longer change
        (all but the last); deltas only ever append, as the API's do."""
        if self._user_item is None:
            return
        self.vad.complete = intents.complete(text)
        words = text.split()[:-1]
        sent = self._heard.split()
        if len(words) <= len(sent) or words[: len(sent)] != sent or not self._transcribing():
            return
        new = " ".join(words[len(sent):])
        delta = new if not sent else " " + new
        self._heard += delta
        self.send("conversation.item.input_audio_transcription.delta", item_id=self._user_item, content_index=0,
                  delta=delta)

    def _transcribing(self) -> bool:
        return bool(self.session["audio"]["input"].get("transcription"))

    def _commit_utterance(self) -> None:
        frames = list(self._utterance)
        n = min(self._speech_frames, len(frames))
        speech = frames[len(frames) - n:] if n else []
        audio = np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)
        speech_audio = np.concatenate(speech) if speech else audio
        self._utterance.clear()
        self._speech_frames = 0
        item_id = self._user_item or new_id("item")
        self._user_item = None
        seconds = len(speech_audio) / SAMPLE_RATE
        self.send("input_audio_buffer.committed", item_id=item_id, previous_item_id=self._last_item)
        item = {"id": item_id, "type": "message", "role": "user", "object": "realtime.item",
                "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self.send("conversation.item.added", item=item, previous_item_id=self._last_item)
        previous, self._last_item = self._last_item, item_id
        if not self._recognising():
            self._finish_user_item(item, previous, f"[{seconds:.1f} seconds of speech]", seconds)
            self._after_turn(speech_audio, None)
            return
        words = self.asr.end() if self.asr.active else self.asr.recognize(frames)
        self.spawn(self._transcribe(item, previous, words, speech_audio, seconds), "transcribe")

    async def _transcribe(self, item: dict, previous: str | None, words: asyncio.Future, audio: np.ndarray,
                          seconds: float) -> None:
        try:
            async with asyncio.timeout(RECOGNITION_WAIT_S):  # not wait_for: 3.11's can swallow a cancel
                text = await asyncio.shield(words)
        except asyncio.TimeoutError:
            text = ""
            log.warning("call %s: speech recognition did not finish in %.0f s", self.call_id, RECOGNITION_WAIT_S)
        transcript = text or f"[{seconds:.1f} seconds of speech, no words recognised]"
        self._finish_user_item(item, previous, transcript, seconds)
        self._after_turn(audio, text)

    def _finish_user_item(self, item: dict, previous: str | None, transcript: str, seconds: float) -> None:
        if self._transcribing():
            self.send("conversation.item.input_audio_transcription.completed", item_id=item["id"], content_index=0,
                      transcript=transcript, usage={"type": "duration", "seconds": round(seconds, 2)})
            item["content"][0]["transcript"] = transcript
        self.send("conversation.item.done", item=item, previous_item_id=previous)
        self._remember(item)

    def _after_turn(self, audio: np.ndarray, words: str | None) -> None:
        td = self._turn_detection()
        if not td or not td.get("create_response", True):
            self._pending_turn = (audio, words)  # the client asks with response.create, as with the real API
        else:
            self._answer_turn_now(audio, words)

    async def _answer_turn(self, audio: np.ndarray, words: str | None) -> None:
        self._answer_turn_now(audio, words)

    def _answer_turn_now(self, audio: np.ndarray, words: str | None) -> None:
        if self.mode == "echo":
            self.start_reply("(echo)", audio, echo=True)
        elif words:
            self.answer(intents.answer(words), audio)
        else:
            self.start_reply(f"I heard {len(audio) / SAMPLE_RATE:.1f} seconds of audio, but no words I know. "
                             f"{intents.STAND_IN}", audio)

    def _mirror(self, samples: np.ndarray) -> None:
        """Mirror mode: every frame straight back, no VAD, no events: a round-trip probe."""
        loud = int(np.abs(samples.astype(np.int32)).max()) > MIRROR_EDGE_PEAK
        edge = loud and not self._mirror_loud
        self._mirror_loud = loud
        self.track.mirror(samples, time.monotonic() if edge else None)

    async def close(self) -> None:
        self._reply = None
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.asr is not None:
            await self.asr.close()
        self.track.stop()


def _mono(frame) -> np.ndarray:
    """A decoded frame (s16, packed, 1 or 2 channels) as mono int16."""
    data = frame.to_ndarray().reshape(-1)
    channels = len(frame.layout.channels)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data.astype(np.int16)
