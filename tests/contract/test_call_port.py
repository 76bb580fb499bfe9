"""One contract, two CallPorts: the UI tests' fake and ControllerPort over a real CallController
on its own CallThread, calling the real backend (`serve --faults`, in-process) over loopback.

Every test runs on both. What the UI relies on is stated here once: the state rules of start,
hang-up and retry, mute and push-to-talk, typed text (queued, then sent), a reconnect, what
comes back (frozen events, on the subscriber's thread) and what the reads give (copies).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading

import pytest

from sandra_tui.call.call_thread import CallThread
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, MuteChanged, StateChanged, Transcript
from sandra_tui.call.port import AudioStatus, CallPort, HistorySnapshot
from sandra_tui.call.thread_port import ControllerPort
from sandra_tui.config.model import Config, IceConfig
from tests.ui.fake_controller import FakeController

# A real connect on loopback takes ~50 ms and a reconnect after the peer closed ~1 s; under
# `stress-ng --cpu 2` both stretch several times. 20 s only bounds a hang.
WAIT_S = 20.0


async def wait_until(predicate, timeout: float = WAIT_S) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


class Rig:
    """A port, what it sent (with the thread each event arrived on), and a way to drop the path."""

    def __init__(self, port: CallPort, drop) -> None:
        self.port = port
        self.drop = drop
        self.events: list = []
        self.threads: set[int] = set()
        self.unsubscribe = port.subscribe(self._take)

    def _take(self, event) -> None:
        self.events.append(event)
        self.threads.add(threading.get_ident())

    def states(self, after: int = 0) -> list[CallState]:
        return [e.state for e in self.events[after:] if isinstance(e, StateChanged)]

    def messages(self, role: str = "user"):
        return [m for m in self.port.history_snapshot().messages if m.role == role]


@pytest.fixture(params=["fake", "real"])
async def rig(request, agent_server):
    if request.param == "fake":
        fake = FakeController()

        async def drop_fake() -> None:
            fake.drop()

        yield Rig(fake, drop_fake)
        await fake.close()
        return
    call = CallThread(name="sandra-call-contract")
    try:
        config = Config(backend={"url": agent_server.url}, ice={"stun": []}, telemetry={"enabled": False})
        controller = call.run(CallController, config)
        port = ControllerPort(controller, call)

        async def drop() -> None:  # the agent closes its peer connection: the client reconnects
            assert await agent_server.action("close_pc") == 1

        r = Rig(port, drop)
        yield r
        r.unsubscribe()
        await port.close()
    finally:
        call.stop()
    assert agent_server.calls == {}


async def connect(rig: Rig) -> None:
    await rig.port.start()
    await wait_until(lambda: rig.port.state == CallState.CONNECTED)


COMMANDS = [name for name, value in vars(CallPort).items() if inspect.iscoroutinefunction(value)]


async def test_it_is_a_call_port_with_every_command_a_coroutine(rig: Rig) -> None:
    assert isinstance(rig.port, CallPort)
    assert len(COMMANDS) >= 20
    missing = [n for n in COMMANDS if not inspect.iscoroutinefunction(getattr(type(rig.port), n, None))]
    assert missing == []


async def test_start_connects_and_hang_up_ends(rig: Rig) -> None:
    assert rig.port.state == CallState.IDLE
    await connect(rig)
    states = rig.states()
    assert states[0] == CallState.ACQUIRING_TOKEN and CallState.CONNECTING in states, states
    assert states[-1] == CallState.CONNECTED
    seen = len(rig.events)
    await rig.port.start()  # a call is running: nothing happens
    await asyncio.sleep(0.2)
    assert rig.states(seen) == []
    await rig.port.hangup()
    await wait_until(lambda: rig.port.state == CallState.ENDED)
    assert rig.states(seen) == [CallState.ENDED]
    seen = len(rig.events)
    await rig.port.hangup()  # nothing left to hang up
    await asyncio.sleep(0.2)
    assert rig.states(seen) == []


async def test_retry_after_hang_up_calls_again(rig: Rig) -> None:
    await connect(rig)
    await rig.port.hangup()
    await wait_until(lambda: rig.port.state == CallState.ENDED)
    seen = len(rig.events)
    await rig.port.retry()
    await wait_until(lambda: rig.port.state == CallState.CONNECTED)
    assert rig.states(seen)[0] == CallState.ACQUIRING_TOKEN


async def test_mute_push_to_talk_and_talk(rig: Rig) -> None:
    assert await rig.port.toggle_mute() is True
    await wait_until(lambda: rig.port.audio_status().muted)
    assert MuteChanged(True, False) in rig.events
    assert await rig.port.toggle_mute() is False
    await wait_until(lambda: not rig.port.audio_status().muted)
    await rig.port.set_push_to_talk(True)
    await wait_until(lambda: rig.port.audio_status().push_to_talk)
    assert MuteChanged(False, True) in rig.events
    await rig.port.talk(True)  # publishes no event of its own; the status says it
    await wait_until(lambda: rig.port.audio_status().talking)
    await rig.port.talk(False)
    await wait_until(lambda: not rig.port.audio_status().talking)


async def test_typed_text_is_queued_then_sent_once_connected(rig: Rig) -> None:
    await rig.port.send_text("   ")  # nothing to send
    await rig.port.send_text("  hello from the contract  ")
    queued = [e for e in rig.events if isinstance(e, Transcript)]
    assert [(e.role, e.text, e.final, e.status) for e in queued] == [
        ("user", "hello from the contract", True, "queued")]
    await wait_until(lambda: [m.status for m in rig.messages()] == ["queued"])
    await connect(rig)
    await wait_until(lambda: any(isinstance(e, Transcript) and e.status == "sent" for e in rig.events))
    sent = next(e for e in rig.events if isinstance(e, Transcript) and e.status == "sent")
    assert sent.item_id == queued[0].item_id
    await wait_until(lambda: [(m.content, m.status) for m in rig.messages()] == [("hello from the contract", "")])


async def test_a_reconnect_keeps_the_conversation(rig: Rig) -> None:
    await connect(rig)
    await rig.port.send_text("remember this")
    await wait_until(lambda: [m.status for m in rig.messages()] == [""])
    seen = len(rig.events)
    await rig.drop()
    await wait_until(lambda: CallState.RECONNECTING in rig.states(seen) and rig.port.state == CallState.CONNECTED)
    states = rig.states(seen)
    assert states.index(CallState.RECONNECTING) < len(states) - 1 and states[-1] == CallState.CONNECTED
    assert [m.content for m in rig.messages()] == ["remember this"]


async def test_clear_history_empties_the_snapshot(rig: Rig) -> None:
    await rig.port.send_text("one")
    await rig.port.send_text("two")
    await wait_until(lambda: len(rig.messages()) == 2)
    before = rig.port.history_snapshot()
    await rig.port.clear_history()
    await wait_until(lambda: rig.port.history_snapshot().messages == ())
    assert [m.content for m in before.messages] == ["one", "two"]  # an old snapshot stays as it was


async def test_events_are_frozen_and_arrive_on_the_subscribers_thread(rig: Rig) -> None:
    await connect(rig)
    await rig.port.toggle_mute()
    await rig.port.send_text("frozen")
    await wait_until(lambda: len(rig.messages()) == 1)
    await rig.port.hangup()
    await wait_until(lambda: rig.port.state == CallState.ENDED)
    assert rig.events and rig.threads == {threading.get_ident()}
    for event in rig.events:
        assert dataclasses.is_dataclass(event) and type(event).__dataclass_params__.frozen, type(event)
    snapshot, status = rig.port.history_snapshot(), rig.port.audio_status()
    assert isinstance(snapshot, HistorySnapshot) and isinstance(status, AudioStatus)
    for frozen, field in ((snapshot, "revision"), (snapshot.messages[0], "content"), (status, "muted")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(frozen, field, None)


async def test_settings_are_a_copy_and_ice_changes_go_in_as_a_command(rig: Rig) -> None:
    settings = rig.port.settings()
    settings.session.voice = "changed-in-the-copy"
    settings.ice.stun.append("stun:copy.example:3478")
    assert rig.port.settings().session.voice != "changed-in-the-copy"
    assert "stun:copy.example:3478" not in rig.port.settings().ice.stun
    ice = IceConfig(stun=["stun:127.0.0.1:3478"], probe_timeout_ms=250)
    await rig.port.set_ice(ice)
    assert rig.port.settings().ice.stun == ["stun:127.0.0.1:3478"]
    assert rig.port.settings().ice.probe_timeout_ms == 250


class RecordingUploader:
    """Stands in for the telemetry uploader: which thread closed it, with what deadline."""

    def __init__(self) -> None:
        self.closed: list[tuple[float, int]] = []

    async def close(self, deadline_s: float = 2.0) -> None:
        self.closed.append((deadline_s, threading.get_ident()))


async def test_the_port_keeps_the_telemetry_uploader_and_closes_it_once(rig: Rig) -> None:
    uploader = RecordingUploader()
    given = []
    await rig.port.start_telemetry(lambda port: given.append(port) or uploader)
    assert given == [rig.port]  # the factory gets the port, the app nothing back
    await rig.port.close_telemetry(1.5)
    await rig.port.close_telemetry(1.5)  # a second quit: nothing left to close
    assert [deadline for deadline, _ in uploader.closed] == [1.5]
    await rig.port.start_telemetry(lambda port: None)  # telemetry off: closing is a no-op
    await rig.port.close_telemetry()
