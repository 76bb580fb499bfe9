"""Is a host this machine? (Then ICE is kept on 127.0.0.1: shims/aioice.loopback_host_candidates.)"""

from __future__ import annotations

import ipaddress

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


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
