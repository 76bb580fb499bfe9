"""The client's address behind trusted reverse proxies (SANDRA_TRUSTED_PROXIES, CIDRs).

`X-Forwarded-For` / `Forwarded` are read only when the peer itself is a trusted proxy; the
chain is walked from the right (the hop our proxy appended) and the first address that is not a
trusted proxy is the client. Anything to its left was written by the client and is ignored.

A small function rather than aiohttp-remotes: its strict middlewares answer 400 to every peer
that is not a trusted proxy (this server also serves direct clients, e.g. the embedded TUI) and
want one trust set per hop; the relaxed ones trust the header from anyone. aiohttp parses
`Forwarded` (RFC 7239) itself: `request.forwarded`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARD_HEADERS = ("X-Forwarded-For", "Forwarded")


def parse_networks(text: str) -> list[Network]:
    """`10.0.0.0/8, 127.0.0.1` -> networks; ValueError naming the bad entry."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"SANDRA_TRUSTED_PROXIES: not an address or CIDR: {part[:60]!r}") from None
    return out


def _ip(text: str | None):
    if not text:
        return None
    text = text.strip().strip('"')
    if text.startswith("["):  # [v6]:port (Forwarded)
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def trusted(address: str | None, networks: Sequence[Network]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in net for net in networks)


def forwarded_chain(request: web.BaseRequest) -> list[str]:
    """The hops the proxies recorded, leftmost (client side) first."""
    if request.headers.get("Forwarded"):
        try:
            return [elem.get("for", "") for elem in request.forwarded]
        except (ValueError, TypeError):
            return []
    values = request.headers.getall("X-Forwarded-For", [])
    return [hop.strip() for value in values for hop in value.split(",") if hop.strip()]


def client_address(peer: str, request: web.BaseRequest, networks: Sequence[Network]) -> str:
    if not networks or not trusted(peer, networks):
        return peer
    chain = forwarded_chain(request)
    for hop in reversed(chain):
        ip = _ip(hop)
        if ip is None:
            return hop[:64] or peer  # our proxy wrote something odd: never treated as loopback
        if not any(ip in net for net in networks):
            return str(ip)
    return str(_ip(chain[0])) if chain else peer


def peer_of(request: web.BaseRequest) -> str:
    """The address of the socket itself, whatever the headers say."""
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    return peer[0] if isinstance(peer, (tuple, list)) and peer else ""


def is_local(request: web.BaseRequest, networks: Sequence[Network]) -> bool:
    """Loopback-only endpoints: the real client is on this machine. A request that carries a
    forwarding header from a peer that is not a trusted proxy came through a proxy nobody
    configured (on this host, so it looks local): refused."""
    if not trusted(request.remote, [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]):
        return False
    if any(request.headers.get(h) for h in FORWARD_HEADERS) and not trusted(peer_of(request), networks):
        return False
    return True


def middleware(networks: Sequence[Network]):
    """`request.remote` becomes the client's address for everything after it (rate limits, logs)."""

    @web.middleware
    async def resolve(request: web.Request, handler):
        if networks:
            peer = request.remote or ""
            client = client_address(peer, request, networks)
            if client != peer:
                request = request.clone(remote=client)
        return await handler(request)

    return resolve
