"""The TUI's first paint needs Textual and the widgets, nothing of the call (issue #23).

The call's libraries (aiortc, av, numpy, livekit, sounddevice, aiohttp, the config model) and
the server's code load after the first paint, on the call thread, when the app's launch hands
the port its controller. Checked in a fresh interpreter: at the moment the launch is called
(after the first refresh) none of them has been imported. Then the deferred port over a real
controller: the app paints, the launch attaches the controller, and the call connects.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from sandra_tui.call.call_thread import CallThread
from sandra_tui.call.events import CallState
from sandra_tui.call.thread_port import ControllerPort
from sandra_tui.ui.app import SandraApp

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("aiortc", "av", "numpy", "livekit", "sounddevice", "aiohttp", "aioice", "pydantic", "sandra_tui.server",
         "sandra_tui.call.controller", "sandra_tui.config.model")

FIRST_PAINT = '''
import asyncio, json, sys
import sandra_tui.cli, sandra_tui.call.early_agent, sandra_tui.ui.run  # what `sandra-tui` runs first
from sandra_tui.call.call_thread import CallThread
from sandra_tui.call.thread_port import ControllerPort
from sandra_tui.ui.app import SandraApp

HEAVY = %r
seen = {}

async def launch():
    seen["loaded"] = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    seen["painted"] = app.main.is_mounted
    await asyncio.Event().wait()  # the call never comes: the test ends the app

async def main():
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(400):
            if seen:
                break
            await pilot.pause(0.05)

call = CallThread()
app = SandraApp(ControllerPort(None, call), launch=launch, monitor_loop_lag=False)
try:
    asyncio.run(main())
finally:
    call.stop()
print(json.dumps(seen))
'''


def test_the_first_paint_loads_none_of_the_call_stack(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([sys.executable, "-c", FIRST_PAINT % (HEAVY,)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["painted"] is True
    assert seen["loaded"] == [], seen["loaded"]


def test_the_check_sees_a_heavy_import(tmp_path) -> None:
    """The same script reports a module of the list once something imports it before the paint."""
    script = FIRST_PAINT.replace("import asyncio, json, sys\n", "import asyncio, json, sys\nimport numpy\n", 1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([sys.executable, "-c", script % (HEAVY,)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "numpy" in json.loads(out.stdout.strip().splitlines()[-1])["loaded"]


async def test_a_deferred_port_gets_its_controller_after_the_paint_and_calls(agent_server, tmp_path) -> None:
    call = CallThread()
    port = ControllerPort(None, call)
    built = []

    def build():  # on the call thread, as ui/run.py's launch does
        from sandra_tui.call.controller import CallController
        from sandra_tui.config.model import Config

        built.append(CallController(Config(backend={"url": agent_server.url}, ice={"stun": []},
                                           telemetry={"enabled": False})))
        return built[0], "extra"

    async def launch():
        assert port.state == CallState.IDLE and not built  # the screen is up before the controller
        assert await port.attach(build) == "extra"
        return {"warnings": ["a warning from the config"], "autostart": True, "call_store": None,
                "config_path": tmp_path / "config.toml"}

    app = SandraApp(port, launch=launch, monitor_loop_lag=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            for _ in range(600):
                if port.state == CallState.CONNECTED:
                    break
                await pilot.pause(0.05)
            assert port.state == CallState.CONNECTED
            assert app.config_path == tmp_path / "config.toml"
            assert port.settings().backend.url == agent_server.url
            await app.action_quit()
    finally:
        call.stop(cleanup=built[0].close if built else None)
    assert built and built[0].supervisor_task is not None and built[0].supervisor_task.done()


async def test_commands_before_the_controller_wait_for_it(agent_server) -> None:
    call = CallThread()
    port = ControllerPort(None, call)
    built = []

    def build():
        from sandra_tui.call.controller import CallController
        from sandra_tui.config.model import Config

        built.append(CallController(Config(backend={"url": agent_server.url}, ice={"stun": []},
                                           telemetry={"enabled": False})))
        return built[0], None

    try:
        waiting = asyncio.ensure_future(port.toggle_mute())  # before attach: it waits
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await port.attach(build)
        assert await asyncio.wait_for(waiting, 30) is True
        assert built[0].audio.muted is True
    finally:
        call.stop(cleanup=built[0].close if built else None)
