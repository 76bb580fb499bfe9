"""The embedded Sandra agent: `sandra-tui serve` on a free loopback port, in a child process
(its media work then runs on the other core, away from the UI's event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import platformdirs

START_TIMEOUT_S = 15.0


class EmbeddedAgentError(RuntimeError):
    pass


class EmbeddedAgent:
    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.url: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._extra = list(extra_args or [])
        self.log_path = Path(platformdirs.user_log_dir("sandra-tui")) / "embedded-agent.log"

    async def start(self) -> str:
        if self.url:
            return self.url
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        ready = Path(tempfile.mkdtemp(prefix="sandra-agent-")) / "ready"
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sandra_tui", "--log-level", "INFO", "serve",
                "--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready), *self._extra,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while not (ready.exists() and ready.read_text().strip()):
            if self._proc.returncode is not None:
                raise EmbeddedAgentError(f"the embedded agent exited ({self._proc.returncode}); see {self.log_path}")
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise EmbeddedAgentError(f"the embedded agent did not start in {START_TIMEOUT_S:g}s; see {self.log_path}")
            await asyncio.sleep(0.02)
        self.url = ready.read_text().strip()
        with contextlib.suppress(OSError):
            ready.unlink()
            ready.parent.rmdir()
        return self.url

    async def stop(self) -> None:
        proc, self._proc, self.url = self._proc, None, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except TimeoutError:
            proc.kill()
            await proc.wait()
