"""coturn on 127.0.0.1 for the tests: STUN + TURN with long-term credentials or REST secret."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER, PASSWORD, REALM = "op", "turn-s3cret-pw", "sandra.test"


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Coturn:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sandra-coturn-"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Coturn":
        base = self.port + 1 if self.port < 60000 else 40000
        args = ["turnserver", "-n", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
                "--listening-port", str(self.port), "--allow-loopback-peers", "--no-cli", "--no-tls",
                "--no-dtls", "--realm", REALM, "--min-port", str(base), "--max-port", str(base + 200),
                "--log-file", str(self.dir / "turn.log"), "--pidfile", str(self.dir / "turn.pid"),
                "--userdb", str(self.dir / "turndb"), "--no-software-attribute", "--simple-log"]
        if self.secret:
            args += ["--use-auth-secret", "--static-auth-secret", self.secret]
        else:
            args += ["--lt-cred-mech", "--user", f"{USER}:{PASSWORD}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from aioice import stun

        request = bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))
        deadline = time.monotonic() + 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.1)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"turnserver exited {self.proc.returncode}")
                s.sendto(request, ("127.0.0.1", self.port))
                try:
                    s.recvfrom(2048)
                    return
                except OSError:
                    continue
        raise RuntimeError("turnserver did not answer STUN")

    @property
    def stun_url(self) -> str:
        return f"stun:127.0.0.1:{self.port}"

    @property
    def turn_url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    @property
    def turn_tcp_url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=tcp"

    def stop(self) -> None:
        from tests.helpers import stop_process

        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class SilentUdp:
    """A bound UDP socket that never answers (a STUN server that vanished)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    @property
    def stun_url(self) -> str:
        return f"stun:127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()
