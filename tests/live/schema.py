"""Validate GPT-Live events against the official openai SDK's models (openai.types.live), one
precise error per event: the unions are rebuilt as discriminated TypeAdapters, as in
tests/realtime_schema.py. The SDK's models accept unknown fields; `strict` also refuses those
(a Realtime field leaking into a Live event is a bug even if the server ignored it)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, TypeAdapter

from tests.realtime_schema import discriminated


@lru_cache(maxsize=4)
def _adapter(kind: str) -> TypeAdapter:
    import openai.types.live as live

    return discriminated({"server": live.ServerEvent, "client": live.ClientEvent}[kind])


def _extras(value, path: str = "") -> list[str]:
    out = []
    if isinstance(value, BaseModel):
        out += [f"{path}.{k}".lstrip(".") for k in (value.model_extra or {})]
        for name in type(value).model_fields:
            out += _extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            out += _extras(v, f"{path}[{i}]")
    return out


def _check(kind: str, event: dict, strict: bool):
    model = _adapter(kind).validate_python(event)
    if strict:
        extra = _extras(model)
        if extra:
            raise ValueError(f"{event.get('type')}: fields unknown to the SDK: {extra}")
    return model


def validate_server_event(event: dict, strict: bool = True):
    return _check("server", event, strict)


def validate_client_event(event: dict, strict: bool = True):
    return _check("client", event, strict)


@lru_cache(maxsize=1)
def _create_adapter() -> TypeAdapter:
    from openai.types.live.live_create_params import LiveCreateParams

    return TypeAdapter(LiveCreateParams)


def warm() -> None:
    """Build the adapters before a call, not on an event loop during one (see realtime_schema.warm)."""
    _adapter("server")
    _adapter("client")
    _create_adapter()


def validate_create_request(body: dict):
    """POST /v1/live/sessions (LiveCreateParams: TypedDicts, Required fields enforced)."""
    return _create_adapter().validate_python(body)


def validate_create_response(body: dict):
    from openai.types.live import LiveCreateResponse

    return LiveCreateResponse.model_validate(body)
