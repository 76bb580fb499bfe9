"""ICE server URLs (RFC 7064 stun:, RFC 7065 turn:/turns:): parsing, validation, normalising."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# `turn:user:pass@host` (or `turn://user@host`): credentials someone wrote into an ICE URL; and
# `https://user:pass@host` in a backend or realtime URL.
_ICE_USERINFO = re.compile(r"(?i)\b((?:turns?|stuns?):(?://)?)([^@\s'\"/,\]]+)@")
_HTTP_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^@\s'\"/]+)@")


def mask_url_credentials(text: str) -> str:
    """Hide the user:password part of every URL in `text` (messages, warnings, output):
    the URL is rejected, but whatever quotes it must not show the password."""
    if "@" not in text:
        return text
    text = _ICE_USERINFO.sub(lambda m: f"{m.group(1)}****@", text)
    return _HTTP_USERINFO.sub(lambda m: f"{m.group(1)}****@", text)


DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "turns": 5349}
TRANSPORTS = ("udp", "tcp")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class IceUrlError(ValueError):
    """A bad ICE URL; the message names the field and the bad value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}: {value!r} is not a valid ICE server URL: {reason}")


@dataclass(frozen=True)
class IceUrl:
    scheme: str  # stun | turn | turns
    host: str  # IPv6 without brackets
    port: int
    transport: str | None = None  # udp | tcp, TURN only

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}:{host}:{self.port}"
        if self.transport:
            text += f"?transport={self.transport}"
        return text


def _check_host(host: str, field: str, value: str) -> str:
    if not host:
        raise IceUrlError(field, value, "the host is missing")
    if host.startswith("["):
        if not host.endswith("]"):
            raise IceUrlError(field, value, "unclosed '[' around an IPv6 address")
        inner = host[1:-1]
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise IceUrlError(field, value, f"{inner!r} is not an IPv6 address") from None
        return inner
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise IceUrlError(field, value, f"{host!r} is not an IPv4 address") from None
        return host
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise IceUrlError(field, value, f"{host!r} is not a valid host name")
    return name.lower()


def _split_host_port(rest: str, field: str, value: str) -> tuple[str, str | None]:
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise IceUrlError(field, value, "unclosed '[' around an IPv6 address")
        host, tail = rest[: end + 1], rest[end + 1 :]
        if not tail:
            return host, None
        if not tail.startswith(":"):
            raise IceUrlError(field, value, f"unexpected {tail!r} after the address")
        return host, tail[1:]
    if rest.count(":") > 1:
        raise IceUrlError(field, value, "an IPv6 address must be written in brackets, e.g. [::1]")
    host, sep, port = rest.partition(":")
    return host, (port if sep else None)


def _parse_port(port: str | None, scheme: str, field: str, value: str) -> int:
    if port is None:
        return DEFAULT_PORTS[scheme]
    if not port.isdigit():
        raise IceUrlError(field, value, f"port {port!r} is not a number")
    number = int(port)
    if not 1 <= number <= 65535:
        raise IceUrlError(field, value, f"port {number} is outside 1-65535")
    return number


def parse_ice_url(value: object, *, field: str = "url", default_scheme: str | None = None) -> IceUrl:
    """Parse `stun:host[:port]` or `turn[s]:host[:port][?transport=udp|tcp]`.

    With `default_scheme`, a bare `host[:port]` gets that scheme (`turn.example.com` ->
    `turn:turn.example.com:3478`).
    """
    if not isinstance(value, str):
        raise IceUrlError(field, value, "expected a string")
    text = value.strip()
    if not text:
        raise IceUrlError(field, value, "it is empty")
    if any(ch.isspace() for ch in text):
        raise IceUrlError(field, value, "it contains white space")
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!\d+(?:$|[?/]))", text)
    if match and match.group(1).lower() in ("stun", "turn", "turns", "stuns"):
        scheme = match.group(1).lower()
        rest = text[match.end() :]
    elif match and "://" in text:
        raise IceUrlError(field, value, f"scheme {match.group(1)!r} is not stun:, turn: or turns:")
    elif default_scheme:
        scheme, rest = default_scheme, text
    elif match:
        raise IceUrlError(field, value, f"scheme {match.group(1)!r} is not stun:, turn: or turns:")
    else:
        raise IceUrlError(field, value, "it must start with stun:, turn: or turns:")
    if scheme == "stuns":
        raise IceUrlError(field, value, "stuns: is not supported (aiortc ignores it); use stun:")
    if rest.startswith("//"):
        raise IceUrlError(field, value, f"write {scheme}:host:port, without '//'")
    if "@" in rest:
        raise IceUrlError(field, value, "credentials belong in username/credential, not in the URL")
    rest, _, query = rest.partition("?")
    if "/" in rest:
        raise IceUrlError(field, value, "a path is not allowed")
    host, port = _split_host_port(rest, field, value)
    host = _check_host(host, field, value)
    number = _parse_port(port, scheme, field, value)
    transport = None
    if query:
        if scheme == "stun":
            raise IceUrlError(field, value, "stun: URLs take no ?transport= (only turn: and turns:)")
        key, sep, val = query.partition("=")
        if key.lower() != "transport" or not sep or "&" in val:
            raise IceUrlError(field, value, "the only query allowed is ?transport=udp or ?transport=tcp")
        if val.lower() not in TRANSPORTS:
            raise IceUrlError(field, value, f"transport {val!r} is not udp or tcp")
        transport = val.lower()
    return IceUrl(scheme, host, number, transport)


def normalize_stun(value: object, field: str = "stun") -> str:
    url = parse_ice_url(value, field=field, default_scheme="stun")
    if url.is_turn:
        raise IceUrlError(field, value, "this is a TURN URL; list it under [[ice.turn]]")
    return str(url)


def normalize_turn(value: object, field: str = "turn") -> str:
    url = parse_ice_url(value, field=field, default_scheme="turn")
    if not url.is_turn:
        raise IceUrlError(field, value, "this is a STUN URL; list it under ice.stun")
    return str(url)
