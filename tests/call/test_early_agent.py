"""The TUI's embedded agent forked first thing in main() (call/early_agent.py, issue #23).

The call takes that agent instead of starting another, starts a new one if it died, and no
path leaves it running: a wrong guess (the config names a backend), an exception or a SIGTERM
before the app is up. The TUI's own exits (SIGKILL, SIGTERM, a crash at mount, Ctrl+Q) with
this agent are the scenarios of tests/call/test_exits.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sandra_tui.call.controller import CallController
from sandra_tui.call.early_agent import spawn_early, wants_embedded
from sandra_tui.call.events import CallState
from sandra_tui.config.model import Config
from tests.call.test_exits import APPEAR_S, GRACE_S, TAG, agent_home, agents, our_agents, wait_for  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_the_guess_follows_the_flag_then_the_file(tmp_path):
    path = tmp_path / "config.toml"
    assert wants_embedded("embedded", None) and not wants_embedded("http://127.0.0.1:8750", None)
    assert wants_embedded(None, str(path))  # no file: defaults
    path.write_text('[backend]\nurl = "http://127.0.0.1:8750"\n')
    assert not wants_embedded(None, str(path))
    assert wants_embedded("embedded", str(path))  # the flag wins, as in the config loader
    path.write_text('[backend]\nurl = "embedded"\n')
    assert wants_embedded(None, str(path))
    path.write_text("[backend\nnot toml")  # the loader falls back to defaults: the embedded agent
    assert wants_embedded(None, str(path))
    path.write_text("[backend]\nurl = 5\n")  # a bad value is dropped by the loader: the default
    assert wants_embedded(None, str(path))
    assert spawn_early("http://127.0.0.1:8750", None) is None


def _early_pid() -> int:
    assert wait_for(lambda: our_agents(), APPEAR_S), "the early agent never started"
    (pid,) = our_agents()
    return pid


async def _connected(controller: CallController) -> None:
    await controller.start()
    for _ in range(int(APPEAR_S / 0.05)):
        if controller.state == CallState.CONNECTED:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not connected: {controller.state} ({controller.last_reason})")


async def test_the_call_uses_the_early_agent(agent_home):
    agent = spawn_early(None, None)
    pid = _early_pid()
    controller = CallController(Config(ice={"stun": []}, telemetry={"enabled": False}), embedded=agent)
    try:
        await _connected(controller)
        assert controller.embedded is agent and agent.pid == pid
        assert our_agents() == [pid]  # no second agent
    finally:
        await controller.close()
    assert not our_agents()


async def test_an_early_agent_that_died_is_replaced(agent_home):
    agent = spawn_early(None, None)
    pid = _early_pid()
    os.kill(pid, signal.SIGKILL)
    controller = CallController(Config(ice={"stun": []}, telemetry={"enabled": False}), embedded=agent)
    try:
        await _connected(controller)
        assert agent.pid != pid and our_agents() == [agent.pid]
    finally:
        await controller.close()
    assert not our_agents()


async def test_an_early_agent_on_a_wrong_guess_is_stopped(agent_home):
    agent = spawn_early(None, None)
    _early_pid()
    controller = CallController(Config(backend={"url": "http://127.0.0.1:9"}, telemetry={"enabled": False}),
                                embedded=agent)
    assert controller.embedded is None and not our_agents()
    await controller.close()


async def test_stopping_an_agent_spawned_but_never_started(agent_home):
    agent = spawn_early(None, None)
    await agent.stop()
    assert not our_agents()
    agent = spawn_early(None, None)
    agent.kill()
    assert not our_agents()


EARLY_THEN = '''
import sys, time
from sandra_tui.call.early_agent import spawn_early
agent = spawn_early(None, None)
print("spawned", flush=True)
if sys.argv[1] == "raise":
    time.sleep(0.5)
    raise RuntimeError("injected: start-up failed")
for _ in range(1200):  # as if still importing Textual: the SIGTERM comes here. Short sleeps: a
    time.sleep(0.05)  # signal taken by the spawner thread reaches Python at the next bytecode
'''


def _client(tmp_path: Path, how: str) -> tuple[subprocess.Popen, str]:
    tag = uuid.uuid4().hex
    env = {**os.environ, TAG: tag, "SANDRA_CONFIG": str(tmp_path / "config.toml"),
           "XDG_STATE_HOME": str(tmp_path / "state"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", EARLY_THEN, how], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    assert proc.stdout.readline().strip() == b"spawned"
    assert wait_for(lambda: agents(tag), APPEAR_S), "no early agent"
    return proc, tag


def test_an_exception_before_the_app_leaves_no_agent(tmp_path):
    proc, tag = _client(tmp_path, "raise")
    _, err = proc.communicate(timeout=APPEAR_S)
    assert proc.returncode == 1 and b"injected: start-up failed" in err
    assert not agents(tag)  # atexit killed and reaped it


def test_a_sigterm_before_the_app_leaves_no_agent(tmp_path):
    proc, tag = _client(tmp_path, "sleep")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=APPEAR_S)
    assert proc.returncode == 128 + signal.SIGTERM  # unwound (SystemExit), so atexit ran
    time.sleep(0.1)
    assert not agents(tag)


def test_a_sigkill_before_the_app_leaves_no_agent(tmp_path):
    proc, tag = _client(tmp_path, "sleep")
    proc.kill()
    proc.communicate(timeout=APPEAR_S)
    # No atexit now: the agent sees its stdin close (and PDEATHSIG) and ends by itself.
    assert wait_for(lambda: not agents(tag), GRACE_S + 3.0), "the early agent outlived a SIGKILLed client"


def test_main_forks_the_agent_for_the_tui_only(monkeypatch, capsys):
    """`sandra-tui` (no sub-command: args.command is None) and only it."""
    import sandra_tui.ui.run as run
    from sandra_tui import cli
    from sandra_tui.call import early_agent

    spawned, handed = [], []
    monkeypatch.setattr(early_agent, "spawn_early", lambda backend, config: spawned.append((backend, config)) or "agent")
    monkeypatch.setattr(run, "run_tui", lambda args: handed.append(args.early_agent) or 0)
    assert cli.main(["--text-only"]) == 0
    assert cli.main(["--backend", "http://127.0.0.1:9", "--config", "/nowhere.toml"]) == 0
    assert spawned == [(None, None), ("http://127.0.0.1:9", "/nowhere.toml")] and handed == ["agent", "agent"]
    assert cli.main(["config", "path"]) == 0
    assert len(spawned) == 2
