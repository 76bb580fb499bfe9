"""The call on its own thread and event loop, away from the UI's.

A Textual repaint that lays out the transcript can hold the UI loop for 100 ms on a slow
machine. If packets were read and decoded on that loop, the playout buffer (40 ms) would run
dry meanwhile and the operator would hear the gap. On its own thread the call keeps running:
the call needs about 1 ms of every 20.

The GIL is the catch: a thread that busies the CPU keeps it for the switch interval (5 ms by
default) each time another thread asks, and the call asks for it several times per packet
(every socket read and write gives it up), so behind a busy UI it would get a few packets a
second. With a 1 ms interval it keeps up (tests/call/test_call_thread.py).

The UI reaches the controller only through its port (call/thread_port.py: commands run here
with `run_async`, events and snapshots come back frozen). `OnThread` wraps what else lives on
the call thread and is closed from the UI's (the telemetry uploader): coroutine methods run on
the call loop and are awaited from the caller's loop, plain methods run there too and return
their result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import sys
import threading

from sandra_tui.loops import finish_tasks

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0
SWITCH_INTERVAL_S = 0.001


async def _invoke(function, args, kwargs):
    result = function(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


class CallThread:
    def __init__(self, name: str = "sandra-call") -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            finish_tasks(self.loop)
            self.loop.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def run(self, function, *args, timeout: float | None = None, **kwargs):
        """`function(*args)` on the call thread (awaited there if it returns an awaitable);
        blocks the caller until it is done and returns its result or raises its error."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("CallThread.run from the call thread itself would wait forever")
        future = asyncio.run_coroutine_threadsafe(_invoke(function, args, kwargs), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"{getattr(function, '__name__', function)} did not finish in {timeout} s") from None

    async def run_async(self, function, *args, **kwargs):
        """The same, awaited from another event loop (the UI's) without blocking it."""
        future = asyncio.run_coroutine_threadsafe(_invoke(function, args, kwargs), self.loop)
        return await asyncio.wrap_future(future)

    def bind(self, target) -> "OnThread":
        return OnThread(target, self)

    def stop(self, cleanup=None) -> None:
        """Run `cleanup()` (a coroutine function, e.g. the controller's close) if given, then end
        the loop; what is still running is cancelled. Safe to call twice."""
        if not self.alive:
            return
        if cleanup is not None:
            try:
                self.run(cleanup, timeout=STOP_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - shutting down: log it and stop anyway
                log.exception("closing the call failed")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("the call thread did not stop within %.0f s", STOP_TIMEOUT_S)


class OnThread:
    """`target` as seen from another thread; see the module docstring."""

    def __init__(self, target, thread: CallThread) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_thread", thread)

    @property
    def target(self):
        return self._target

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if not callable(value) or inspect.isclass(value):
            return value
        thread = self._thread
        if inspect.iscoroutinefunction(value):
            async def call_async(*args, **kwargs):
                return await thread.run_async(value, *args, **kwargs)

            return call_async

        def call(*args, **kwargs):
            return thread.run(value, *args, **kwargs)

        return call

    def __setattr__(self, name: str, value) -> None:
        setattr(self._target, name, value)

    def __repr__(self) -> str:
        return f"OnThread({type(self._target).__name__})"
