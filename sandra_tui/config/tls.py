"""The client's TLS context for an https backend (`backend.url = "https://..."`).

The certificate is verified against the system store (OpenSSL's default paths, which also honour
SSL_CERT_FILE), or against SANDRA_CA_FILE alone when set: a PEM bundle of the CAs a private
deployment uses (deploy/README.md). Hostname checking is always on. A certificate that fails is
a permanent signaling error (call/signaling.py), not a retry.
"""

from __future__ import annotations

import functools
import os
import ssl

CA_FILE_ENV = "SANDRA_CA_FILE"


class TlsConfigError(ValueError):
    """SANDRA_CA_FILE is set but cannot be used; the message names the file and why."""


@functools.lru_cache(maxsize=4)
def _context(ca_file: str | None) -> ssl.SSLContext:
    try:
        # cafile given: only those CAs; none: the system store (load_default_certs)
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"{CA_FILE_ENV}={ca_file}: cannot load CA certificates: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None


def client_context(env=os.environ) -> ssl.SSLContext:
    """A verifying context (cached per CA file: loading the system store takes tens of ms)."""
    return _context(env.get(CA_FILE_ENV) or None)


def connector_kwargs(env=os.environ) -> dict:
    """`aiohttp.TCPConnector(**connector_kwargs())`."""
    return {"ssl": client_context(env)}
