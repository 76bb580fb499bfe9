"""The call on its own thread: the proxy's semantics, and a busy UI thread not starving the call."""

import asyncio
import threading
import time

import pytest

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.playout import PlayoutBuffer
from sandra_tui.call.call_thread import CallThread
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState
from sandra_tui.config.model import Config
from tests.agent_server import ServeProcess


class Target:
    flag = "initial"

    def __init__(self) -> None:
        self.threads: list[str] = []

    async def double(self, value):
        await asyncio.sleep(0.01)
        self.threads.append(threading.current_thread().name)
        return value * 2

    def where(self):
        return threading.current_thread().name, asyncio.get_running_loop()

    async def fail(self):
        raise ValueError("bad input")


@pytest.fixture
def call_thread():
    thread = CallThread(name="test-call")
    yield thread
    thread.stop()


async def test_methods_run_on_the_call_thread_and_attributes_pass_through(call_thread):
    target = Target()
    proxy = call_thread.bind(target)
    assert await proxy.double(21) == 42 and target.threads == ["test-call"]
    name, loop = proxy.where()  # a plain method: run there, result returned
    assert name == "test-call" and loop is call_thread.loop
    assert proxy.flag == "initial"
    proxy.flag = "changed"  # set on the target, not on the proxy
    assert target.flag == "changed" and proxy.target is target
    with pytest.raises(ValueError, match="bad input"):
        await proxy.fail()


def test_stop_runs_the_cleanup_then_ends_the_thread():
    thread = CallThread()
    cleaned = []

    async def cleanup():
        cleaned.append(threading.current_thread() is not threading.main_thread())

    thread.stop(cleanup=cleanup)
    assert cleaned == [True] and not thread.alive and thread.loop.is_closed()
    thread.stop()  # twice is harmless


def test_a_stuck_call_gives_a_timeout_error_not_a_hang(call_thread):
    with pytest.raises(TimeoutError, match="did not finish"):
        call_thread.run(asyncio.sleep, 5, timeout=0.2)


@pytest.fixture(scope="module")
def serve():
    proc = ServeProcess("--faults", "--agent-mode", "mirror").start()
    yield proc
    proc.stop()


def busy(seconds: float) -> int:
    """Hold the CPU (and the GIL, as a repaint does) on this thread for `seconds`."""
    end, spins = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        spins += 1
    return spins


def test_a_busy_ui_thread_does_not_stop_the_audio(serve, call_thread):
    """A Textual layout can hold the UI thread for 100 ms or more: the call thread keeps
    receiving and decoding meanwhile, so the playout buffer is fed."""
    playout = PlayoutBuffer(target_ms=40)
    config = Config(backend={"url": serve.url}, ice={"stun": []}, telemetry={"enabled": False})
    controller = call_thread.run(CallController, config, audio=AudioEngine(playout=playout))
    proxy = call_thread.bind(controller)
    try:
        asyncio.run(proxy.start())
        deadline = time.monotonic() + 20
        while controller.state != CallState.CONNECTED or playout.frames_in < 50:
            assert time.monotonic() < deadline, f"not connected and fed in time: {controller.state}"
            time.sleep(0.05)
        before = playout.frames_in
        busy(0.6)  # 30 frames' worth
        during = playout.frames_in - before
        assert during >= 15, f"only {during} frames arrived while the UI thread was busy"
    finally:
        call_thread.run(controller.close, timeout=10)
