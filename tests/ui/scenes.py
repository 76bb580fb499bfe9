"""Deterministic app states, shared by the snapshot tests and scripts/screenshots.py.

Fixed clock, fixed ids, fake controller: the same scene renders the same picture every time.
Each scene is `async scene(pilot)` for snap_compare's run_before.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from sandra_tui.call.events import (
    AudioLevels,
    CallState,
    DevicesChanged,
    ErrorEvent,
    LatencySample,
    PlayoutStats,
    Quality,
    StateChanged,
)
from sandra_tui.config.model import Config, TurnServer
from sandra_tui.ui.app import SandraApp
from tests.ui.fake_controller import FakeController

DEMO_CREDENTIAL = "s3cret-demo"  # a fake: screenshots may only ever show this one
START = 1000.0


class FrozenClock:
    """A clock that moves only when told to, for the call timer and the reconnect countdown."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def demo_config() -> Config:
    config = Config(ice={"stun": ["stun:stun1.example.com:19302", "stun:stun.example.org:3478"],
                         "turn": [{"url": "turn:turn.example.org:3478?transport=udp", "username": "operator",
                                   "credential": DEMO_CREDENTIAL}]},
                    telemetry={"enabled": False})
    env = TurnServer(url="turn:relay.example.net:3478", username="env-user", credential="env-secret-value")
    env._origin = "SANDRA_TURN_SERVER"
    config.ice.turn = [env] + list(config.ice.turn)
    return config


def make_app(controller: FakeController | None = None, clock: FrozenClock | None = None,
             config_path: Path | None = None) -> SandraApp:
    return SandraApp(controller or FakeController(config=demo_config()), autostart=False,
                     clock=clock or FrozenClock(), config_path=config_path, monitor_loop_lag=False)


def steady(app: SandraApp) -> None:
    """No blinking cursor: a snapshot must not depend on when it was taken."""
    for field in app.screen.query(Input):
        field.cursor_blink = False


async def ready(pilot) -> None:
    """Wait until the app listens to the controller: scripted events before that would be lost."""
    for _ in range(500):
        if pilot.app.listening:
            return
        await pilot.pause(0.01)
    raise RuntimeError("the app never subscribed to the controller")


async def settle(pilot) -> None:
    app = pilot.app
    app.main.repaint()
    steady(app)
    await pilot.pause()
    app.main.repaint()
    await pilot.pause()


# -- main screen --------------------------------------------------------------------------------
async def idle(pilot) -> None:
    await ready(pilot)
    await settle(pilot)


def _call_going(c: FakeController, clock: FrozenClock) -> None:
    c.emit(StateChanged(CallState.CONNECTING))
    c.emit(StateChanged(CallState.CONNECTED))
    clock.now = START + 83  # 01:23 into the call
    c.emit(AudioLevels(-18.0, -27.0, -9.0, -20.0))
    c.emit(Quality(38.0, 4.2, 3, 2510, 0.1, 4.3))
    c.emit(PlayoutStats(42.0, 40.0, 1, 12))
    c.emit(DevicesChanged("USB Headset", "USB Headset"))
    for ms, cls in ((640, "MEDIUM"), (420, "MEDIUM"), (380, "MEDIUM"), (290, "GOOD"), (1240, "HIGH"),
                    (310, "MEDIUM"), (260, "GOOD"), (230, "GOOD"), (275, "GOOD"), (240, "GOOD")):
        c.emit(LatencySample("response_latency", ms, cls))


def _conversation(c: FakeController) -> None:
    c.say("user", "Hi Sandra, can you hear me?")
    c.say("assistant", "Loud and clear. I'm the local test agent; what would you like to try?")
    c.say("user", "Tell me how the reconnect works.")
    item = c.next_id()
    c.stream("assistant", item, "When the path dies I retry with backoff: 1, 2, 4, 8 and 16 seconds, ")
    c.stream("assistant", item, "picking a healthy STUN or TURN server each time")


async def connected(pilot) -> None:
    await ready(pilot)
    app = pilot.app
    _call_going(app.port, app.clock)
    _conversation(app.port)
    await settle(pilot)


async def reconnecting(pilot) -> None:
    await ready(pilot)
    app = pilot.app
    _call_going(app.port, app.clock)
    _conversation(app.port)
    app.port.emit(StateChanged(CallState.RECONNECTING, reason="ice_failed", attempt=2, max_attempts=5,
                                     delay_ms=2000))
    await settle(pilot)


async def failed(pilot) -> None:
    await ready(pilot)
    app = pilot.app
    c = app.port
    c.emit(StateChanged(CallState.CONNECTING))
    c.emit(ErrorEvent("backend unreachable: http://127.0.0.1:8750 refused the connection", "backend_unreachable"))
    c.emit(StateChanged(CallState.FAILED, reason="backend_unreachable"))
    await settle(pilot)


# -- dialogs ------------------------------------------------------------------------------------
async def _open(pilot, key: str) -> None:
    await ready(pilot)
    await pilot.press(key)
    await pilot.pause()
    steady(pilot.app)
    await pilot.pause()


async def ice_editor_error(pilot) -> None:
    await _open(pilot, "f6")
    editor = pilot.app.screen
    editor.rebuild(len(editor.servers.rows), reload=True)  # the "new server" row
    await pilot.pause()
    await pilot.click("#ice-url")
    await pilot.press(*"stun:stun.example.org:99999")
    await pilot.pause()


async def _turn_row(pilot) -> None:
    await _open(pilot, "f6")
    editor = pilot.app.screen
    editor.rebuild(3, reload=True)  # stun, stun, env turn, config turn
    await pilot.pause()


async def ice_editor_masked(pilot) -> None:
    await _turn_row(pilot)


async def ice_editor_revealed(pilot) -> None:
    await _turn_row(pilot)
    await pilot.click("#ice-reveal")
    # A pressed Button keeps its "-active" look for 0.2 s on a timer; whether the picture falls
    # inside that window depends on machine load, so end the effect before the picture.
    pilot.app.screen.query_one("#ice-reveal").remove_class("-active")
    await pilot.pause()


async def devices(pilot) -> None:
    await _open(pilot, "f8")


async def mic_test(pilot) -> None:
    """The Audio dialog's microphone test, finished: level and verdict."""
    await _open(pilot, "f8")
    await pilot.press("ctrl+t")
    for _ in range(100):
        if "Recorded" in str(pilot.app.screen.query_one("#mic-test-result").render()):
            break
        await pilot.pause(0.02)
    await pilot.pause()


async def help_screen(pilot) -> None:
    await _open(pilot, "f1")


async def session_settings(pilot) -> None:
    await _open(pilot, "f10")


async def history_screen(pilot) -> None:
    """Two saved calls in a store under a fixed temp path, times fixed."""
    import tempfile

    from sandra_tui.call.call_log import CallRecord, CallStore, summary_line

    import atexit
    import shutil

    directory = Path(tempfile.mkdtemp(prefix="sandra-scene-"))
    atexit.register(shutil.rmtree, directory, True)
    store = CallStore(directory / "calls.sqlite3")
    for i, (length, mos, p50) in enumerate(((192, 4.3, 410), (61, 3.9, 620))):
        start = 1_767_000_000 + i * 3600
        r = CallRecord(start, start + length, "ended", reconnects=i, mos_avg=mos, mos_min=mos - 0.3,
                       latency_p50_ms=p50, latency_p95_ms=p50 * 2, turns=3 - i,
                       messages=[{"ts": start + 5, "role": "user", "text": "check booking 1234", "status": ""},
                                 {"ts": start + 6, "role": "assistant", "text": "Booking 1234 is confirmed.",
                                  "status": ""}])
        r.summary = summary_line(r)
        store.add(r)
    pilot.app.call_store = store
    await _open(pilot, "f9")
    pilot.app.screen.query_one("#history-note").update("2 call(s)")  # the temp path would differ per run


async def confirm_clear(pilot) -> None:
    await ready(pilot)
    pilot.app.port.say("user", "something worth keeping")
    await pilot.press("f7")
    await pilot.pause()


SCENES = {
    "idle": idle,
    "connected": connected,
    "reconnecting": reconnecting,
    "failed": failed,
    "ice-editor-error": ice_editor_error,
    "ice-editor-masked": ice_editor_masked,
    "ice-editor-revealed": ice_editor_revealed,
    "devices": devices,
    "mic-test": mic_test,
    "help": help_screen,
    "session-settings": session_settings,
    "history": history_screen,
    "confirm-clear": confirm_clear,
}
