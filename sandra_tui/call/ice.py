"""Which ICE servers a connection attempt uses.

aiortc uses only the first STUN and the first TURN server of a list, and a silent STUN server
adds ~5 s to every connect. So: probe all servers at once (cached), put the fastest healthy one
first, drop the dead, rotate across reconnect attempts, and go relay-only after a failed
attempt when TURN is available. A backend on loopback gets only loopback servers (none by
default): it needs no STUN and must not make us probe public servers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiortc import RTCIceServer

from sandra_tui.config.model import IceConfig
from sandra_tui.config.urls import IceUrlError, parse_ice_url
from sandra_tui.media.loopback import is_loopback_host

log = logging.getLogger(__name__)
ICE_FAILURE_REASONS = {"ice_failed", "connect_timeout", "pc_failed"}


@dataclass
class Server:
    url: str
    kind: str  # stun | turn
    username: str = ""
    credential: str = field(default="", repr=False)

    def to_rtc(self) -> RTCIceServer:
        if self.kind == "turn":
            return RTCIceServer(urls=self.url, username=self.username, credential=self.credential)
        return RTCIceServer(urls=self.url)


@dataclass
class Plan:
    servers: list[Server]
    relay_only: bool = False

    def to_rtc(self) -> list[RTCIceServer]:
        return [s.to_rtc() for s in self.servers]

    def describe(self) -> str:
        mode = " (relay only)" if self.relay_only else ""
        return (", ".join(s.url for s in self.servers) or "no ICE servers") + mode


def _host(url: str) -> str | None:
    try:
        return parse_ice_url(url).host
    except IceUrlError:
        return None


def gather_servers(ice: IceConfig, token_servers: list[dict], loopback_backend: bool) -> list[Server]:
    servers = [Server(u, "stun") for u in ice.stun]
    servers += [Server(t.url, "turn", t.username, t.credential.get_secret_value()) for t in ice.turn]
    for entry in token_servers:  # the backend may hand out TURN REST credentials
        urls = entry.get("urls") if isinstance(entry, dict) else None
        for url in [urls] if isinstance(urls, str) else list(urls or []):
            kind = "turn" if str(url).startswith(("turn:", "turns:")) else "stun"
            servers.append(Server(str(url), kind, entry.get("username", "") or "", entry.get("credential", "") or ""))
    if loopback_backend:
        servers = [s for s in servers if is_loopback_host(_host(s.url))]
    seen, unique = set(), []
    for s in servers:
        if (s.url, s.username) not in seen:
            seen.add((s.url, s.username))
            unique.append(s)
    return unique


class IcePlanner:
    """Orders servers by a probe (injected: `async probe(servers, timeout_s) -> {url: rtt_ms|None}`)."""

    def __init__(self, ice: IceConfig, probe=None) -> None:
        self.ice = ice
        self.probe = probe
        self._cache: dict[tuple, tuple[float, dict[str, float | None]]] = {}

    def invalidate(self) -> None:
        self._cache.clear()

    async def plan(self, servers: list[Server], attempt: int, last_reason: str | None,
                   last_relay: bool) -> Plan:
        if not servers:
            return Plan([])
        rtts = await self._probe(servers)
        stun = self._healthy(servers, "stun", rtts)
        turn = self._healthy(servers, "turn", rtts)
        if attempt > 0:  # spread retries over the healthy servers
            stun = stun[attempt % len(stun):] + stun[: attempt % len(stun)] if stun else stun
            turn = turn[attempt % len(turn):] + turn[: attempt % len(turn)] if turn else turn
        relay = bool(turn) and self.ice.relay_fallback and attempt > 0 and not last_relay \
            and last_reason in ICE_FAILURE_REASONS
        chosen = turn if relay else stun + turn
        return Plan(chosen, relay_only=relay)

    def _healthy(self, servers: list[Server], kind: str, rtts: dict[str, float | None]) -> list[Server]:
        of_kind = [s for s in servers if s.kind == kind]
        if self.probe is None:
            return of_kind
        alive = [s for s in of_kind if rtts.get(s.url) is not None]
        dead = [s.url for s in of_kind if rtts.get(s.url) is None]
        if dead:
            log.info("ICE: leaving out unreachable %s servers: %s", kind, ", ".join(dead))
        return sorted(alive, key=lambda s: rtts[s.url])

    async def _probe(self, servers: list[Server]) -> dict[str, float | None]:
        if self.probe is None:
            return {}
        key = tuple((s.url, s.username) for s in servers)
        cached = self._cache.get(key)
        if cached is None or time.monotonic() - cached[0] > self.ice.probe_cache_s:
            cached = (time.monotonic(), await self.probe(servers, self.ice.probe_timeout_ms / 1000))
            self._cache[key] = cached
        return cached[1]


def backend_is_loopback(url: str) -> bool:
    return url == "embedded" or is_loopback_host(urlsplit(url).hostname)
