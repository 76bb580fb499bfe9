"""The UI holds a CallPort and nothing else of the call (issue #21).

Read from the source: no module under sandra_tui/ui imports the call's internals or reaches
through the port for an object of the call thread. Checked at run time: a running app over a
real ControllerPort holds no object of the call among its own or its main screen's attributes.
"""

from __future__ import annotations

import ast
from pathlib import Path

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.call.controller import CallController
from sandra_tui.call.history import ConversationHistory
from sandra_tui.call.thread_port import ControllerPort
from sandra_tui.config.model import Config
from sandra_tui.ui.app import SandraApp

UI = Path(__file__).resolve().parents[2] / "sandra_tui" / "ui"
# run.py is where the program is put together: it builds the controller on the call thread and
# hands the app a port. It is the one UI module allowed to name the controller.
COMPOSITION_ROOT = UI / "run.py"
FORBIDDEN_MODULES = ("sandra_tui.call.controller", "sandra_tui.call.supervisor", "sandra_tui.call.connection",
                     "sandra_tui.call.session", "sandra_tui.call.call_thread", "sandra_tui.call.thread_port",
                     "sandra_tui.audio.engine")
# Attributes of call-thread objects: nothing in the UI names them on anything.
FORBIDDEN_ANYWHERE = {"controller", "_controller", "planner", "bus", "supervisor", "connection", "target",
                      "telemetry"}  # the uploader lives on the call thread; the port closes it
# Fine on a settings copy (port.settings().audio); never on the port itself.
FORBIDDEN_ON_PORT = {"audio", "history", "config", "embedded"}


def violations(source: str, name: str) -> list[str]:
    tree = ast.parse(source, filename=name)
    found = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [f"{where} imports {n}" for n in names if n in FORBIDDEN_MODULES]
        elif isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names if a.name in FORBIDDEN_MODULES]
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_ANYWHERE:
                found.append(f"{where} reads .{node.attr}")
            elif node.attr in FORBIDDEN_ON_PORT and _is_port(node.value):
                found.append(f"{where} reads .{node.attr} of the port")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and \
                    node.args[1].value in FORBIDDEN_ANYWHERE | FORBIDDEN_ON_PORT:
                found.append(f"{where} getattr(..., {node.args[1].value!r})")
    return found


def _is_port(node: ast.expr) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return name in ("port", "_port")


def test_no_ui_module_reaches_past_the_port() -> None:
    files = [p for p in UI.rglob("*.py") if p != COMPOSITION_ROOT]
    assert len(files) > 20
    found = [v for p in files for v in violations(p.read_text(), str(p.relative_to(UI.parent.parent)))]
    assert found == [], "\n".join(found)


def test_the_check_catches_what_it_forbids() -> None:
    bad = ("from sandra_tui.call.controller import CallController\n"
           "def f(self):\n    self.port.audio.muted = True\n    self.app.port.history\n"
           "    self.controller.start()\n    getattr(self.port, 'config')\n    self.port.settings().audio\n")
    found = violations(bad, "bad.py")
    assert len(found) == 5, found  # the settings copy's .audio is fine


def _call_objects(owner) -> list[str]:
    kinds = (CallController, AudioEngine, ConversationHistory, Config)
    return [f"{type(owner).__name__}.{k}" for k, v in vars(owner).items() if isinstance(v, kinds)]


async def test_a_running_app_holds_only_the_port(agent_server) -> None:
    controller = CallController(Config(backend={"url": agent_server.url}, ice={"stun": []},
                                       telemetry={"enabled": False}))
    port = ControllerPort(controller)
    app = SandraApp(port, autostart=False, monitor_loop_lag=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.port is port
        assert _call_objects(app) == [] and _call_objects(app.main) == []
        for name in ("audio", "history", "config", "controller", "planner"):
            assert not hasattr(port, name), name
        await port.close()
