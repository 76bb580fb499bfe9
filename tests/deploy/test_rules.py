"""deploy/prometheus: the config and the alert rules pass promtool, and the rules' own tests
(sandra-alerts.test.yml: each alert fires on its threshold and stays quiet under it) pass."""

import subprocess

from tests.deploy.conftest import require_tools
from tests.deploy.stack import DEPLOY

PROM = DEPLOY / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    require_tools("promtool")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=PROM)


def test_promtool_check_rules():
    r = promtool("check", "rules", "sandra-alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 6 rules found" in r.stdout


def test_promtool_check_config():
    r = promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_test_rules():
    r = promtool("test", "rules", "sandra-alerts.test.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
