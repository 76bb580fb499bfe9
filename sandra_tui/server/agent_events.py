"""The client events the local agent accepts, checked as the real API checks them."""

from __future__ import annotations

import copy
import json

from sandra_tui.wire.realtime import CLIENT_EVENTS
from sandra_tui.server import intents
from sandra_tui.server.agent_session import (SESSION_SCHEMA, BadEvent, check_keys, check_turn_detection,
                                             default_session, merge, new_id)
from sandra_tui.server.vad import FRAME_MS


class ClientEvents:
    """Mixed into LocalAgentCall: one `_client_<type>` method per client event."""

    # -- client events ---------------------------------------------------------------------------
    def on_client_event(self, raw) -> None:
        try:
            event = json.loads(raw)
        except (ValueError, TypeError):
            self.error("The event is not valid JSON.", "invalid_json")
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self.error("Events must be JSON objects with a string 'type'.", "invalid_event")
            return
        kind, event_id = event["type"], event.get("event_id")
        if event_id is not None and not isinstance(event_id, str):
            self.error("'event_id' must be a string.", "invalid_type", None, "event_id")
            return
        if kind not in CLIENT_EVENTS:
            self.error(f"Unknown event type {kind[:80]!r}.", "unknown_event", event_id, "type")
            return
        handler = getattr(self, "_client_" + kind.replace(".", "_"))
        try:
            handler(event)
        except BadEvent as exc:
            self.error(str(exc), exc.code, event_id, exc.param)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            self.error(f"Malformed {kind}: {detail}"[:300], "invalid_value", event_id)

    def _client_session_update(self, event: dict) -> None:
        patch = event.get("session")
        if not isinstance(patch, dict):
            raise BadEvent("'session' must be an object.", "invalid_type", "session")
        patch = {k: v for k, v in patch.items() if k not in ("id", "object", "expires_at")}
        check_keys(patch, SESSION_SCHEMA, "session")
        if "type" not in patch:
            raise BadEvent("Missing required parameter: 'session.type'.", "missing_required_parameter",
                           "session.type")
        if patch["type"] != "realtime":
            raise BadEvent("'session.type' must be 'realtime' here.", "invalid_value", "session.type")
        candidate = merge(copy.deepcopy(self.session), patch)
        td = candidate["audio"]["input"].get("turn_detection")
        check_turn_detection(td)
        if td is not None:
            if td["type"] == "semantic_vad":
                full = {"type": "semantic_vad", "eagerness": "auto", "create_response": True,
                        "interrupt_response": True}
                td = {k: v for k, v in td.items() if k in (*full, "eagerness")}
            else:
                full = default_session("", "")["audio"]["input"]["turn_detection"]
                td = {k: v for k, v in td.items() if k != "eagerness"}
            full.update(td)
            candidate["audio"]["input"]["turn_detection"] = full
        speed = candidate["audio"]["output"].get("speed")
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))
                                  or not 0.25 <= speed <= 1.5):
            raise BadEvent("'session.audio.output.speed' must be from 0.25 to 1.5.", "invalid_value",
                           "session.audio.output.speed")
        instructions = candidate.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise BadEvent("'session.instructions' must be a string.", "invalid_type", "session.instructions")
        self.session = candidate
        if candidate["audio"]["input"].get("turn_detection"):
            self.vad.configure_turn(candidate["audio"]["input"]["turn_detection"])
            self._resize_prefix()
        self.echo_session = (instructions or "").strip().lower() == "echo"
        self.send("session.updated", session=self.session)

    def _client_conversation_item_create(self, event: dict) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            raise BadEvent("'item' must be an object.", "invalid_type", "item")
        item = copy.deepcopy(item)
        if item.get("type") != "message" or item.get("role") not in ("user", "assistant", "system"):
            raise BadEvent("The local agent accepts message items (user, assistant, system) only.",
                           "invalid_value", "item.type")
        content = item.get("content")
        if not isinstance(content, list) or not all(isinstance(c, dict) for c in content):
            raise BadEvent("'item.content' must be a list of objects.", "invalid_type", "item.content")
        allowed = {"user": ("input_text", "input_audio"), "system": ("input_text",),
                   "assistant": ("output_text", "output_audio")}[item["role"]]
        for part in content:
            if part.get("type") not in allowed:
                raise BadEvent(f"A {item['role']} message takes content of type {' or '.join(allowed)}.",
                               "invalid_value", "item.content")
            if part["type"] in ("input_text", "output_text") and not isinstance(part.get("text"), str):
                raise BadEvent("Text content needs a string 'text'.", "invalid_type", "item.content.text")
        item_id = item.get("id")
        if item_id is not None and (not isinstance(item_id, str) or not 0 < len(item_id) <= 64):
            raise BadEvent("'item.id' must be a string of at most 64 characters.", "invalid_value", "item.id")
        if item_id in self._items:
            raise BadEvent(f"Item with id '{item_id}' already exists.", "item_already_exists", "item.id")
        item["id"] = item_id or new_id("item")
        item["object"] = "realtime.item"
        item["status"] = "completed"
        self.send("conversation.item.added", item=item, previous_item_id=self._last_item)
        self.send("conversation.item.done", item=item, previous_item_id=self._last_item)
        self._last_item = item["id"]
        self._remember(item)
        if item["role"] == "user":
            texts = [c.get("text", "") for c in content if c.get("type") == "input_text"]
            self._pending_text = " ".join(t for t in texts if t)

    def _client_response_create(self, event: dict) -> None:
        if self._reply is not None:
            raise BadEvent(f"Conversation already has an active response in progress: {self._reply['id']}. "
                           "Wait until the response is finished before creating a new one.",
                           "conversation_already_has_active_response")
        response = event.get("response")
        if response is not None and not isinstance(response, dict):
            raise BadEvent("'response' must be an object.", "invalid_type", "response")
        text, self._pending_text = self._pending_text.strip(), ""
        turn, self._pending_turn = self._pending_turn, None
        if turn is not None and not text:
            self.spawn(self._answer_turn(*turn), "turn")
        elif text:
            self.answer(intents.answer(text, typed=True))
        else:
            self.start_reply(f"{intents.STAND_IN} How can I help?")

    def _client_response_cancel(self, event: dict) -> None:
        wanted = event.get("response_id")
        if self._reply is None or (wanted is not None and wanted != self._reply["id"]):
            raise BadEvent("There is no active response to cancel." if wanted is None else
                           f"Response '{wanted}' is not in progress.", "response_cancel_not_active", "response_id")
        self._cancel_reply("response.cancel", "client_cancelled")

    def _client_output_audio_buffer_clear(self, event: dict) -> None:
        if self._reply is not None:
            self._cancel_reply("output_audio_buffer.clear", "client_cancelled")
        elif self.track.clear() and self._audio_reply is not None:
            reply, self._audio_reply = self._audio_reply, None
            self.send("output_audio_buffer.cleared", response_id=reply["id"])

    def _client_conversation_item_truncate(self, event: dict) -> None:
        item_id, index, end_ms = event.get("item_id"), event.get("content_index", 0), event.get("audio_end_ms")
        if not isinstance(item_id, str):
            raise BadEvent("'item_id' must be a string.", "invalid_type", "item_id")
        if not isinstance(index, int) or isinstance(index, bool) or index != 0:
            raise BadEvent("'content_index' must be 0 (one audio part per item).", "invalid_value", "content_index")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise BadEvent("'audio_end_ms' must be a whole number of ms >= 0.", "invalid_value", "audio_end_ms")
        item = self._items.get(item_id)
        if item is None and self._reply is not None and self._reply["item"] == item_id:
            self._cancel_reply("truncate", "client_cancelled")
            item = self._items.get(item_id)
        if item is None:
            raise BadEvent(f"Item with item_id '{item_id}' not found.", "item_not_found", "item_id")
        if item.get("role") != "assistant":
            raise BadEvent("Only assistant messages can be truncated.", "invalid_value", "item_id")
        # A client counts what it played, which can run a frame or two past what was sent: clamp.
        end_ms = min(end_ms, item.get("_audio_ms", end_ms))
        item["_audio_ms"] = end_ms
        item["content"][0]["transcript"] = ""  # the real API drops the unheard transcript as well
        self.send("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms)

    def _client_conversation_item_delete(self, event: dict) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or item_id not in self._items:
            raise BadEvent(f"Item with item_id '{item_id}' not found.", "item_not_found", "item_id")
        del self._items[item_id]
        self.send("conversation.item.deleted", item_id=item_id)

    def _client_conversation_item_retrieve(self, event: dict) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or item_id not in self._items:
            raise BadEvent(f"Item with item_id '{item_id}' not found.", "item_not_found", "item_id")
        item = {k: v for k, v in self._items[item_id].items() if not k.startswith("_")}
        self.send("conversation.item.retrieved", item=item)

    def _client_input_audio_buffer_clear(self, event: dict) -> None:
        self._utterance.clear()
        self._speech_frames = 0
        self.vad.reset()
        self._user_item = None
        if self.asr is not None:
            self.asr.cancel()
        self.send("input_audio_buffer.cleared")

    def _client_input_audio_buffer_commit(self, event: dict) -> None:
        if len(self._utterance) * FRAME_MS < 100:
            raise BadEvent(f"Error committing input audio buffer: buffer too small. Expected at least 100ms of "
                           f"audio, but buffer only has {len(self._utterance) * FRAME_MS}.00ms of audio.",
                           "input_audio_buffer_commit_empty")
        self._user_item = self._user_item or new_id("item")
        self.vad.reset()
        self._commit_utterance()

    def _client_input_audio_buffer_append(self, event: dict) -> None:
        raise BadEvent("Over WebRTC the audio travels as RTP: input_audio_buffer.append is not accepted.",
                       "unsupported_event", "type")
