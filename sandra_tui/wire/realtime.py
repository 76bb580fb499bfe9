"""Names and shapes shared by the Sandra backend (`sandra-tui serve`) and its clients.

Backend HTTP API
----------------
``POST /api/sandra/token`` (TOKEN_PATH), optional JSON body ``{"session_id": str, "reconnect": bool}``
-> 200 with a :class:`TokenResponse`::

    {"value": "ek_sandra_...",       # short-lived key: `Authorization: Bearer <value>` on realtime_url
     "expires_at": 1767225600,        # unix seconds
     "realtime_url": "http://127.0.0.1:8750/v1/realtime/calls",   # absolute; POST the SDP offer here
     "model": "gpt-realtime-2.1",
     "notice": "...",                 # only when there is something to tell the operator (model shutdown)
     "ice_servers": [{"urls": ["turn:host:3478?transport=udp"], "username": "...", "credential": "..."}],
     "session_id": "sess_..."}       # the client's own id when it sent a valid one

``ice_servers`` is ``[]`` when the backend has nothing to offer (e.g. a loopback agent); TURN
entries carry coturn REST credentials (username ``<expiry>:<session>``). With ``--upstream openai``
``realtime_url`` is the backend's own ``/v1/realtime/calls``, which relays the offer to OpenAI
with the server's key (SANDRA_OPENAI_MODE=relay, the default); with SANDRA_OPENAI_MODE=mint it is
OpenAI's ``/v1/realtime/calls`` and ``value`` an OpenAI ``ek_`` key.
Keys minted by the backend start with ``SIGNED_KEY_PREFIX`` (signed, self-contained: see
server/tokens.py); anything that masks secrets can recognise them by it.

``POST {realtime_url}`` with ``Content-Type: application/sdp`` and the offer as the body ->
``201`` with the answer SDP and ``Location: /v1/realtime/calls/{call_id}``.
``POST /v1/realtime/calls/{call_id}/hangup`` with the same bearer key ends the call.

Every error is JSON ``{"error": {"message", "type", "code"}}`` (see :func:`error_body`); 429 and
some 5xx carry ``Retry-After`` (seconds).
"""

from __future__ import annotations

import re
from typing import Literal, NotRequired, TypedDict

TOKEN_PATH = "/api/sandra/token"
CALLS_PATH = "/v1/realtime/calls"
CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"
FAULTS_PATH = "/_faults"
MODELS_PATH = "/v1/models"  # GET {MODELS_PATH}/{model}: `shutdown_date` (YYYY-MM-DD or null)
SIGNED_KEY_PREFIX = "ek_sandra_"
DEFAULT_MODEL = "gpt-realtime-2.1"
SESSION_EXPIRED = "session_expired"  # error code of the event that ends a session at its maximum length
DATA_CHANNEL_LABEL = "oai-events"
# What a session id and a metric name may be, on the token endpoint, the metrics API and in the
# client's telemetry alike (the client drops or renames what the server would refuse).
SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Latency metric names the client measures and sends in a payload's `byName` (sandra_tui/call:
# connection.py, session.py, supervisor.py). The backend keeps a Prometheus series for each of
# these; any other name is stored with its payload but counted under OTHER_METRIC, so clients
# cannot grow the server's label set (a newer client's new name is not a rejected payload).
LATENCY_METRICS = frozenset({
    "token_acquisition",      # POST /api/sandra/token
    "sdp_exchange",           # offer -> answer
    "ice_connect",            # answer -> ICE/DTLS connected
    "time_to_first_audio",    # connected -> first audio from Sandra
    "response_latency",       # end of the caller's speech -> Sandra's first audio
    "text_response_latency",  # a typed message sent -> Sandra's first reply
    "reconnect_total",        # drop -> connected again
})
OTHER_METRIC = "other"


class IceServer(TypedDict):
    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


class TokenResponse(TypedDict):
    value: str
    expires_at: int
    realtime_url: str
    model: str
    ice_servers: list[IceServer]
    session_id: str
    notice: NotRequired[str]


ErrorType = Literal["invalid_request_error", "rate_limit_error", "server_error", "authentication_error"]


def error_body(message: str, code: str, type_: str = "invalid_request_error") -> dict:
    """The OpenAI error object: ``{"error": {"message", "type", "code"}}``."""
    return {"error": {"message": message, "type": type_, "code": code}}


# Client -> server events (GA names) the local agent understands.
CLIENT_EVENTS = frozenset({
    "session.update",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
    "input_audio_buffer.clear",
    "input_audio_buffer.commit",
    "input_audio_buffer.append",  # WebSocket only: over WebRTC the audio is RTP; answered with an error
})

# Server -> client events (GA names) the local agent emits.
SERVER_EVENTS = frozenset({
    "session.created",
    "session.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.deleted",
    "conversation.item.retrieved",
    "conversation.item.truncated",
    "conversation.item.input_audio_transcription.completed",
    "response.created",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.output_audio.done",
    "response.done",
    "rate_limits.updated",
    "output_audio_buffer.started",
    "output_audio_buffer.stopped",
    "output_audio_buffer.cleared",
    "error",
})

RESPONSE_STATUSES = ("completed", "cancelled", "failed", "incomplete", "in_progress")
