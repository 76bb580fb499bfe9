"""CPU contention for tests: `stress-ng --cpu N --timeout S` beside the code under test.

stress-ng's timeout bounds the load even if the test process dies without its teardown; the
fixture stops it earlier, always: the whole process group (stress-ng forks one worker per
CPU), SIGTERM then SIGKILL, and checks nothing of it is left.

    from tests.stress import cpu_stress  # noqa: F401  (the fixture)

    def test_x(cpu_stress): ...                     # 2 workers for at most 180 s
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import require

DEFAULT_TIMEOUT_S = 180  # longer than any test that uses it, shorter than a stuck CI job


class Stress:
    def __init__(self, cpus: int = 2, timeout_s: int = DEFAULT_TIMEOUT_S) -> None:
        self.cpus = cpus
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Stress":
        self.proc = subprocess.Popen(
            ["stress-ng", "--cpu", str(self.cpus), "--timeout", f"{self.timeout_s}s", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        # Running once its workers are: the load is on before the test starts measuring.
        deadline = time.monotonic() + 10
        while len(self.workers()) < self.cpus:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stress-ng exited {self.proc.returncode} at start")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("stress-ng workers did not start")
            time.sleep(0.05)
        return self

    def workers(self) -> list[int]:
        """Pids in stress-ng's process group other than stress-ng itself."""
        if self.proc is None:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.proc.pid:
                continue
            try:
                if os.getpgid(int(entry)) == self.proc.pid:
                    found.append(int(entry))
            except (ProcessLookupError, PermissionError):
                continue
        return found

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group is stress-ng's own
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and (self.proc.poll() is None or self.workers()):
                time.sleep(0.05)
            if self.proc.poll() is not None and not self.workers():
                break
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        left = self.workers()
        self.proc = None
        if left:
            raise RuntimeError(f"stress-ng left processes {left}")


@pytest.fixture
def cpu_stress():
    """`stress-ng --cpu 2` for the test's duration (at most DEFAULT_TIMEOUT_S)."""
    require(shutil.which("stress-ng") is not None, "stress-ng (apt install stress-ng)")
    stress = Stress().start()
    try:
        yield stress
    finally:
        stress.stop()
