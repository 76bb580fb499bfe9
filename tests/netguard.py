"""Keeps every test on loopback.

An audit hook sees each socket connect/sendto/sendmsg and each name lookup in this process;
anything aimed outside 127.0.0.0/8 or ::1 is refused on the spot and recorded, and the
autouse fixture in conftest.py fails the test that did it (the error may have been swallowed
by a background task, so the record is what counts).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading

violations: list[str] = []
_lock = threading.Lock()
_installed = False
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def is_loopback_host(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    host = host.split("%", 1)[0].strip("[]")
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _check_address(event: str, sock: object, address: object) -> None:
    family = getattr(sock, "family", None)
    if family == socket.AF_UNIX or family == getattr(socket, "AF_NETLINK", -1):
        return
    if isinstance(address, (str, bytes)):  # unix socket path
        return
    if isinstance(address, tuple) and address:
        if is_loopback_host(address[0]):
            return
    _refuse(f"{event} to {address!r}")


def _refuse(what: str) -> None:
    with _lock:
        violations.append(what)
    raise PermissionError(f"test network guard: {what} leaves loopback")


def _hook(event: str, args: tuple) -> None:
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[1]
        if address is None:
            return
        _check_address(event, sock, address)
    elif event == "socket.getaddrinfo":
        host = args[0]
        if host is None or is_loopback_host(host):
            return
        _refuse(f"name lookup of {host!r}")
    elif event == "socket.gethostbyname":
        if not is_loopback_host(args[0]):
            _refuse(f"name lookup of {args[0]!r}")


def install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


def take_violations() -> list[str]:
    with _lock:
        found = list(violations)
        violations.clear()
    return found
