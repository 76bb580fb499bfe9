"""The deploy/ configs run for real on loopback: a CA and a server certificate, `serve` replicas
on one PostgreSQL, nginx (deploy/nginx/sandra.conf) and Prometheus (deploy/prometheus/), each
a child process of the test on free ports with its own temp dir."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from tests.agent_server import ServeProcess
from tests.helpers import stop_process

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRET = "deploy-test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}: {log.read_text(errors='replace')[-2000:]}")


def make_ca(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """(ca.pem, server cert chain, server key): a CA of the test's own, a server certificate for
    `host` (IP and DNS names) signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandra test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(pem))
    cert_path.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def client_ssl(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


class Replicas:
    """N `serve` processes as systemd would run them: fixed ports, SANDRA_REPLICA_ID=r1..rN, one
    SANDRA_SECRET and one PostgreSQL, trusting nginx on loopback."""

    def __init__(self, n: int, dsn: str, *extra: str, env: dict | None = None) -> None:
        self.ports = [free_port() for _ in range(n)]
        self.procs = []
        for i, port in enumerate(self.ports, start=1):
            proc = ServeProcess("--port", str(port), *extra, env={
                "SANDRA_REPLICA_ID": f"r{i}", "SANDRA_SECRET": SECRET, "SANDRA_DATABASE_URL": dsn,
                "SANDRA_TRUSTED_PROXIES": "127.0.0.1/32", **(env or {})})
            self.procs.append(proc)

    def start(self) -> "Replicas":
        for proc in self.procs:
            proc.start(timeout=30)
        return self

    def restart(self, i: int) -> float:
        """Stop replica i (SIGTERM, as systemctl restart) and start it on the same port; seconds down."""
        proc = self.procs[i]
        began = time.monotonic()
        proc.stop()
        proc.start(timeout=30)
        return time.monotonic() - began

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


def render_nginx_site(ports: list[int], listen: int, cert: Path, key: Path) -> str:
    """deploy/nginx/sandra.conf on the test's ports: the same file, with only addresses and paths
    changed (and a header naming the replica that answered, for the round-robin assertions)."""
    text = (DEPLOY / "nginx" / "sandra.conf").read_text()
    for i, port in enumerate(ports, start=1):
        text, n = re.subn(rf"127\.0\.0\.1:875{i}\b", f"127.0.0.1:{port}", text)
        assert n >= 2, f"replica {i} is not in the nginx config"
    text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{listen} ssl http2;\n    "
                        "add_header X-Test-Upstream $upstream_addr always;")
    text = text.replace("listen [::]:443 ssl http2;\n", "").replace("listen [::]:80;\n", "")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
    text = text.replace("/etc/ssl/sandra/fullchain.pem", str(cert)).replace("/etc/ssl/sandra/privkey.pem", str(key))
    return text


class Nginx:
    def __init__(self, site: str, port: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sandra-nginx-"))
        self.dir.chmod(0o755)
        self.port = port
        self.log = self.dir / "error.log"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / sub).mkdir()
            (self.dir / sub).chmod(0o777)  # the workers (nobody, when we are root) write here
        (self.dir / "sandra.conf").write_text(site)
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.log} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    include {self.dir}/sandra.conf;
}}
""")
        self.proc: subprocess.Popen | None = None

    def check(self) -> subprocess.CompletedProcess:
        return subprocess.run(["nginx", "-t", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
                              capture_output=True, text=True, timeout=30)

    def start(self) -> "Nginx":
        with open(self.dir / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen(["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                                          "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "nginx", self.log)
        return self

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(3)  # SIGQUIT: graceful; stop_process follows up with TERM/KILL
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Prometheus:
    """deploy/prometheus/prometheus.yml with the test's targets, scraping every second."""

    def __init__(self, ports: list[int]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sandra-prom-"))
        self.port = free_port()
        text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
        text = text.replace("scrape_interval: 15s", "scrape_interval: 1s")
        text = text.replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        text = text.replace("- sandra-alerts.yml", f"- {DEPLOY / 'prometheus' / 'sandra-alerts.yml'}")
        for i, port in enumerate(ports, start=1):
            text, n = re.subn(rf"127\.0\.0\.1:875{i}\b", f"127.0.0.1:{port}", text)
            assert n == 1, f"replica {i} is not a scrape target"
        (self.dir / "prometheus.yml").write_text(text)
        self.log = self.dir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={self.dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                 "--storage.tsdb.retention.time=1h"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        wait_port(self.port, self.proc, "prometheus", self.log, timeout=30)
        # Listening is not ready: until its storage is open, Prometheus answers 503 on /-/ready and
        # on the query API (seen once in CI under stress-ng). /-/ready is its documented signal.
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):  # 503 (an HTTPError) while starting, or no answer yet
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
