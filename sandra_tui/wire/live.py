"""GPT-Live (OpenAI's successor voice API) as sandra-tui speaks it: paths, event names, shapes.

Authority: the openai SDK's `openai.types.live` (3.57) and `openai.resources.live`.

- The trusted backend creates a session: `POST /v1/live/sessions` with the standard key and
  `{"session": {"model", "instructions", "audio": {"output": {"voice"}}, "client": {...}},
  "transport": {"type": "webrtc", "sdp": <offer>}}` -> `{"session": {"id"}, "transport":
  {"type": "webrtc", "sdp": <answer>}}` (LiveCreateParams / LiveCreateResponse). There are no
  ephemeral client keys; our client posts its offer to the backend (LIVE_CALLS_PATH) with the
  backend's own short key, exactly as for the Realtime relay.
- The caller waits for `session.started` before any command (WebRTC creation starts the
  session: `session.start` is never sent on the data channel).
- There are no turn events: transcripts are `session.input_transcript.delta` and
  `session.output_transcript.delta` with `start_ms`/`end_ms` on the session timeline, and no
  done event. Interruptions are the model's own business; the client can mute the input
  (`session.input_audio.mute`/`unmute`), add context (`session.instructions.append`,
  `session.thinking.append`, `session.commentary.append`) and close (`session.close`).
- Voice, instructions and model are fixed at startup; `session.update` changes only
  delegation and transcript triggers.
"""

from __future__ import annotations

LIVE_SESSIONS_PATH = "/v1/live/sessions"  # upstream: create; {id}/hangup
LIVE_CALLS_PATH = "/v1/live/calls"  # ours: the caller's offer (application/sdp), relayed or answered locally
DEFAULT_LIVE_MODEL = "gpt-live-1"
DATA_CHANNEL = "oai-events"

# Every client event the SDK knows (openai.types.live.ClientEvent).
CLIENT_EVENTS = frozenset({
    "session.start", "session.update", "session.input_audio.append", "session.input_audio.mute",
    "session.input_audio.unmute", "session.output_audio.fixture.play", "session.instructions.append",
    "session.thinking.append", "session.commentary.append", "decision.create", "decision.item.create",
    "decision.item.delete", "response.item.create", "response.create", "session.close",
})

# What our client sends on a WebRTC data channel; the backend allows the frontend no more
# (`session.client.data_channel.allowed_client_events`: the caller is an untrusted frontend).
FRONTEND_CLIENT_EVENTS = (
    "session.input_audio.mute", "session.input_audio.unmute", "session.instructions.append",
    "session.thinking.append", "session.close",
)

# A typed message goes as developer instructions framed so: Live has no user-text item.
TYPED_PREFIX = "The caller typed this instead of speaking; answer it aloud: "
# Context for a new session (renewal, reconnect): silent, it requests no speech.
EARLIER_USER = "Earlier in this call the caller said: "
EARLIER_ASSISTANT = "Earlier in this call you said: "
# The operator's stop key: the model is told, since Live has no response.cancel.
STOPPED = "The caller stopped your last reply; do not continue it, wait for them."
MAX_CONTEXT_CHARS = 1500  # the append events take at most 500 tokens each

CLOSE_REASONS = ("close_requested", "expired", "content", "remote_hangup", "connection_lost")


def live_model(model: str) -> str:
    """The Live model for a configured model name: a gpt-live-* name as is, else the default
    (SANDRA_MODEL usually names a Realtime model)."""
    return model if model.startswith("gpt-live") else DEFAULT_LIVE_MODEL


def append_event(kind: str, content: str, event_id: str | None = None) -> dict:
    """`session.instructions.append` / `thinking.append` / `commentary.append`; delegation_id is
    "required, nullable" in the SDK: null for general session context."""
    event = {"type": f"session.{kind}.append", "content": content[:MAX_CONTEXT_CHARS], "delegation_id": None}
    if event_id:
        event["event_id"] = event_id
    return event


def session_resource(session_id: str, model: str, voice: str, expires_at: int, instructions: str = "") -> dict:
    """A SessionResource (session.started / updated / closed)."""
    out = {"id": session_id, "expires_at": int(expires_at), "model": live_model(model), "status": "active",
           "audio": {"output": {"voice": voice}}}
    if instructions:
        out["instructions"] = instructions
    return out


def create_body(offer_sdp: str, model: str, voice: str, instructions: str) -> dict:
    """The body of POST /v1/live/sessions (LiveCreateParams)."""
    session = {"model": live_model(model), "audio": {"output": {"voice": voice}},
               "client": {"data_channel": {"allowed_client_events": list(FRONTEND_CLIENT_EVENTS)}}}
    if instructions:
        session["instructions"] = instructions
    return {"session": session, "transport": {"type": "webrtc", "sdp": offer_sdp}}
