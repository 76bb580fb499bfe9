"""The local agent's responses: a spoken reply (espeak-ng) with its transcript streamed as
deltas while the audio plays, barge-in and cancel, and the demo function call (arguments
streamed, a function_call item, its output, then the spoken answer)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import numpy as np

from sandra_tui.server import intents, tools, tts
from sandra_tui.server.agent_session import new_id
from sandra_tui.server.audio_track import SAMPLE_RATE
from sandra_tui.server.rate_window import reserved_tokens
from sandra_tui.server.vad import FRAME_MS

log = logging.getLogger("sandra_tui.server.agent")
TTS_VOICES = {"en": "en-us", "es": "es"}


class Replies:
    """Mixed into LocalAgentCall: uses its send, spawn, track, session and conversation state."""

    def start_reply(self, text: str, fallback_audio: np.ndarray | None = None, echo: bool = False,
                    lang: str = "en") -> dict:
        if self._reply is not None:
            self._cancel_reply("superseded", "turn_detected")
        response_id, item_id = new_id("resp"), new_id("item")
        reply = {"id": response_id, "item": item_id, "text": text, "sent": "", "audio_started": False,
                 "audio_s": 0.0, "frames_at_start": 0, "lang": lang}
        self._reply = reply
        self._reply_task = self.spawn(self._run_reply(reply, fallback_audio, echo), "reply")
        return reply

    def answer(self, answer: intents.Answer, fallback_audio: np.ndarray | None = None) -> None:
        """Speak an intent's answer, or run its function first."""
        if answer.tool is None:
            self.start_reply(answer.text, fallback_audio, lang=answer.lang)
            return
        if self._reply is not None:
            self._cancel_reply("superseded", "turn_detected")
        name, arguments = answer.tool
        reply = {"id": new_id("resp"), "item": new_id("item"), "call_id": new_id("call"), "name": name,
                 "arguments": json.dumps(arguments), "lang": answer.lang, "tool": True}
        self._reply = reply
        self._reply_task = self.spawn(self._run_tool(reply), "tool")

    def _rate_limits(self, tokens: int) -> None:
        self.send("rate_limits.updated", rate_limits=self.rate_window.spend(tokens))

    def _response(self, reply: dict, status: str, output: list | None = None, reason: str | None = None) -> dict:
        details = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": reason or "client_cancelled"}
        return {"id": reply["id"], "object": "realtime.response", "status": status, "status_details": details,
                "output": output or [], "conversation_id": "conv_local", "output_modalities": ["audio"],
                "max_output_tokens": "inf", "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000},
                                                                 "voice": self.session["audio"]["output"]["voice"]}},
                "usage": None, "metadata": None}

    def _assistant_item(self, reply: dict, status: str, transcript: str | None) -> dict:
        return {"id": reply["item"], "type": "message", "role": "assistant", "object": "realtime.item",
                "status": status, "content": [{"type": "output_audio", "transcript": transcript}]}

    def _call_item(self, reply: dict, status: str) -> dict:
        return {"id": reply["item"], "type": "function_call", "object": "realtime.item", "status": status,
                "call_id": reply["call_id"], "name": reply["name"],
                "arguments": reply["arguments"] if status == "completed" else ""}

    async def _run_tool(self, reply: dict) -> None:
        """One response whose output is a function call; its output item; then the spoken answer
        (a second response), as a model with tools would do once the client sent the output."""
        rid, iid, call_id = reply["id"], reply["item"], reply["call_id"]
        self.send("response.created", response=self._response(reply, "in_progress"))
        self._rate_limits(reserved_tokens(reply["arguments"]))
        item = self._call_item(reply, "in_progress")
        self.send("response.output_item.added", response_id=rid, output_index=0, item=item)
        self.send("conversation.item.added", item=item, previous_item_id=self._last_item)
        self._last_item = iid
        arguments = reply["arguments"]
        for start in range(0, len(arguments), 8):  # streamed in pieces, as the model does
            self.send("response.function_call_arguments.delta", response_id=rid, item_id=iid, output_index=0,
                      call_id=call_id, delta=arguments[start : start + 8])
            await asyncio.sleep(0.01)
        self.send("response.function_call_arguments.done", response_id=rid, item_id=iid, output_index=0,
                  call_id=call_id, name=reply["name"], arguments=arguments)
        item = self._call_item(reply, "completed")
        self._remember(item)
        self.send("response.output_item.done", response_id=rid, output_index=0, item=item)
        self.send("conversation.item.done", item=item, previous_item_id=None)
        self.send("response.done", response=self._response(reply, "completed", [item]))
        self.tool_calls += 1
        output = tools.run(reply["name"], arguments)
        out_item = {"id": new_id("item"), "type": "function_call_output", "object": "realtime.item",
                    "status": "completed", "call_id": call_id, "output": output}
        self.send("conversation.item.added", item=out_item, previous_item_id=self._last_item)
        self.send("conversation.item.done", item=out_item, previous_item_id=self._last_item)
        self._last_item = out_item["id"]
        self._remember(out_item)
        if self._reply is reply:
            self._reply = None
        spoken = intents.tool_answer(json.loads(output), reply["lang"])
        self.start_reply(spoken.text, lang=spoken.lang)

    async def _run_reply(self, reply: dict, fallback_audio: np.ndarray | None, echo: bool) -> None:
        rid, iid, text = reply["id"], reply["item"], reply["text"]
        self.send("response.created", response=self._response(reply, "in_progress"))
        self._rate_limits(reserved_tokens(text))
        item = self._assistant_item(reply, "in_progress", None)
        self.send("response.output_item.added", response_id=rid, output_index=0, item=item)
        self.send("conversation.item.added", item=item, previous_item_id=self._last_item)
        self._last_item = iid
        self.send("response.content_part.added", response_id=rid, item_id=iid, output_index=0, content_index=0,
                  part={"type": "audio", "transcript": ""})
        if echo and fallback_audio is not None and len(fallback_audio):
            audio = fallback_audio
        else:
            audio = None
            if tts.available():
                speed = self.session["audio"]["output"].get("speed") or 1.0
                audio = await tts.speak(text, voice=TTS_VOICES.get(reply.get("lang"), "en-us"),
                                        words_per_minute=int(260 * float(speed)))
            if audio is None or not len(audio):
                audio = fallback_audio if fallback_audio is not None and len(fallback_audio) else _tone(0.6)
        reply["frames_at_start"] = self.track.frames_sent
        duration = self.track.play(audio)
        reply["audio_s"] = duration
        words = text.split(" ")
        step = max(0.02, 0.8 * duration / max(1, len(words)))  # the transcript runs a little ahead
        for i, word in enumerate(words):
            delta = word if i == 0 else " " + word
            reply["sent"] += delta
            self.send("response.output_audio_transcript.delta", response_id=rid, item_id=iid, output_index=0,
                      content_index=0, delta=delta)
            await asyncio.sleep(step)
        deadline = time.monotonic() + self.track.queued_ms / 1000 + 2.0
        while self.track.queued_ms > 0:
            if time.monotonic() > deadline:  # nobody is pulling our audio (no sending transceiver)
                self.track.clear()
                break
            await asyncio.sleep(0.02)
        self._finish_reply(reply)

    def _finish_reply(self, reply: dict) -> None:
        rid, iid, text = reply["id"], reply["item"], reply["text"]
        self.send("response.output_audio_transcript.done", response_id=rid, item_id=iid, output_index=0,
                  content_index=0, transcript=text)
        self.send("response.output_audio.done", response_id=rid, item_id=iid, output_index=0, content_index=0)
        self.send("response.content_part.done", response_id=rid, item_id=iid, output_index=0, content_index=0,
                  part={"type": "audio", "transcript": text})
        item = self._assistant_item(reply, "completed", text)
        self._remember({**item, "_audio_ms": int(reply["audio_s"] * 1000)})
        self.send("response.output_item.done", response_id=rid, output_index=0, item=item)
        self.send("conversation.item.done", item=item, previous_item_id=None)
        self.send("response.done", response=self._response(reply, "completed", [item]))
        self.turns += 1
        if self._reply is reply:
            self._reply = None
        if reply.get("drained") and self._audio_reply is reply:
            self._audio_reply = None
            self.send("output_audio_buffer.stopped", response_id=reply["id"])

    def _cancel_reply(self, why: str, reason: str = "client_cancelled") -> None:
        reply, self._reply = self._reply, None
        if reply is None:
            return
        if self._reply_task is not None:
            self._reply_task.cancel()
        if reply.get("tool"):  # cancelled before its call was made: the item is incomplete
            item = self._call_item(reply, "incomplete")
            self.send("response.output_item.done", response_id=reply["id"], output_index=0, item=item)
            self.send("response.done", response=self._response(reply, "cancelled", [item], reason))
            return
        self.track.clear()
        item = self._assistant_item(reply, "incomplete", reply["sent"])
        heard_ms = (self.track.frames_sent - reply["frames_at_start"]) * FRAME_MS if reply["audio_started"] else 0
        self._remember({**item, "_audio_ms": min(heard_ms, int(reply["audio_s"] * 1000))})
        self.send("response.output_item.done", response_id=reply["id"], output_index=0, item=item)
        self.send("conversation.item.done", item=item, previous_item_id=None)
        self.send("response.done", response=self._response(reply, "cancelled", [item], reason))
        if reply["audio_started"]:
            self._audio_reply = None
            self.send("output_audio_buffer.cleared", response_id=reply["id"])
        log.debug("call %s: reply cancelled (%s)", self.call_id, why)

    def _on_audio_started(self) -> None:
        if self._reply is not None and not self._reply.get("tool"):
            self._reply["audio_started"] = True
            self._audio_reply = self._reply
            self.send("output_audio_buffer.started", response_id=self._reply["id"])

    def _on_audio_drained(self) -> None:
        reply = self._audio_reply
        if reply is None:
            return
        if reply is self._reply:  # still finishing: stopped follows its response.done
            reply["drained"] = True
            return
        self._audio_reply = None
        self.send("output_audio_buffer.stopped", response_id=reply["id"])


def _tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
