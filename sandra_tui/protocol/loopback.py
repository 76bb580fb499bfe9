"""Keep ICE on loopback when both ends are on this machine.

aioice gathers host candidates on every interface except 127.0.0.1, so two local peers would
talk over the LAN address. When the agent or backend is on loopback we pin host candidates to
127.0.0.1 (process-wide: aioice reads the module global at gather time).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_original = None


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]")
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return url == "embedded" or is_loopback_host(urlsplit(url).hostname)


def pin_host_candidates_to_loopback(enabled: bool = True) -> None:
    """Make aioice offer only 127.0.0.1 as host candidate (or undo it)."""
    global _original
    import aioice.ice

    if enabled:
        if _original is None:
            _original = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _loopback_addresses
    elif _original is not None:
        aioice.ice.get_host_addresses = _original
        _original = None


def _loopback_addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else ["::1"]
