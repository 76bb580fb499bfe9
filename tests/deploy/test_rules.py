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


def test_systemd_units_verify(tmp_path):
    """systemd-analyze verify on the template (as instance 1) and the target, pointed at this
    checkout's sandra-tui (the units name /opt/sandra-tui, where deploy/README.md installs it)."""
    import shutil
    import sys
    from pathlib import Path

    require_tools("systemd-analyze")
    exe = Path(sys.executable).parent / "sandra-tui"
    for name in ("sandra-serve@.service", "sandra-serve.target"):
        text = (DEPLOY / "systemd" / name).read_text().replace("/opt/sandra-tui/.venv/bin/sandra-tui", str(exe))
        (tmp_path / name).write_text(text)
    (tmp_path / "sandra-serve@1.service").symlink_to(tmp_path / "sandra-serve@.service")
    r = subprocess.run([shutil.which("systemd-analyze"), "verify", "--man=no", str(tmp_path / "sandra-serve@1.service"),
                        str(tmp_path / "sandra-serve.target")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "sandra-serve" not in r.stderr, r.stderr
