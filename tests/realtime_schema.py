"""Validate Realtime events against the official openai SDK's models, one precise error per
event (the SDK's unions are rebuilt as discriminated TypeAdapters, as the protocol notes say)."""

from __future__ import annotations

import typing
from functools import lru_cache
from typing import Annotated, Union

from pydantic import Field, TypeAdapter


def _members(union) -> list:
    args = typing.get_args(union)
    if args and typing.get_origin(args[0]) is Union:
        args = typing.get_args(args[0])
    return [a for a in args if "type" in getattr(a, "model_fields", {})]


def discriminated(union) -> TypeAdapter:
    """One of the SDK's event unions as a TypeAdapter that picks its member by `type`."""
    return TypeAdapter(Annotated[Union[tuple(_members(union))], Field(discriminator="type")])


@lru_cache(maxsize=2)
def _adapter(kind: str) -> TypeAdapter:
    import openai.types.realtime as realtime

    return discriminated(realtime.RealtimeServerEvent if kind == "server" else realtime.RealtimeClientEvent)


def warm() -> None:
    """Build both adapters now. The first build takes 1.7 s of CPU on a quiet machine (several
    seconds under stress-ng); done inside a message callback it held a test caller's loop mid-call,
    no RTP went out, and the server rightly reaped the call as silent (seen in CI)."""
    _adapter("server")
    _adapter("client")


def validate_server_event(event: dict):
    return _adapter("server").validate_python(event)


def validate_client_event(event: dict):
    return _adapter("client").validate_python(event)
