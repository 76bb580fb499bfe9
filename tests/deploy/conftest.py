import shutil

import pytest

from tests.conftest import require


def require_tools(*names: str) -> None:
    for name in names:
        require(shutil.which(name) is not None, f"{name} (apt install nginx prometheus)")


@pytest.fixture(scope="module")
def stack(postgres_server, tmp_path_factory):
    """Three replicas on one PostgreSQL behind nginx with TLS from the test's CA."""
    require_tools("nginx")
    from tests.deploy.stack import Nginx, Replicas, free_port, make_ca, render_nginx_site

    tls = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_ca(tls)
    replicas = Replicas(3, postgres_server.dsn, "--faults").start()
    port = free_port()
    nginx = Nginx(render_nginx_site(replicas.ports, port, cert, key), port)
    try:
        checked = nginx.check()
        assert checked.returncode == 0, checked.stderr
        nginx.start()
        hooked(replicas.urls()[0])
    except BaseException:
        nginx.stop()
        replicas.stop()
        raise
    yield Stack(replicas, nginx, ca, postgres_server.dsn)
    nginx.stop()
    replicas.stop()


def hooked(url: str) -> None:
    """serve installs server/ops.py (the one call in create_app the deploy work needs)."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    if "sandra_http_responses_total" not in text:
        pytest.fail("serve does not install sandra_tui.server.ops (create_app must call ops.install(app, s, "
                    "prom=prom, calls=app[CALLS], check_key=app[TOKENS].check, storage=storage) after "
                    "metrics.install(app)): no shared limits, no sandra_http_responses_total")


class Stack:
    def __init__(self, replicas, nginx, ca, dsn) -> None:
        self.replicas, self.nginx, self.ca, self.dsn = replicas, nginx, ca, dsn

    def replica_of_upstream(self, upstream: str) -> str:
        """`127.0.0.1:PORT` (nginx's $upstream_addr; the last one when it tried several) -> rN."""
        port = int(upstream.split(",")[-1].strip().rpartition(":")[2])
        return f"r{self.replicas.ports.index(port) + 1}"
