"""`ControllerPort`: the CallPort over a real CallController, on the call thread or the same loop.

Two halves. The call half runs where the controller lives: it subscribes to the controller's
events, derives the snapshots (history, audio status, flags) there, and hands batches to the
UI through a Coalescer. The UI half keeps the latest snapshots (plain references to frozen
objects) and calls the UI's subscribers on the UI's loop. Commands run on the call loop and
are awaited from the UI's (CallThread.run_async), so the UI never waits on the call's work.

Without a CallThread (tests, benchmarks) both halves share one loop and events are delivered
in the controller's publish, as before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading

from sandra_tui.call.events import (
    CallState,
    DevicesChanged,
    Event,
    MuteChanged,
    RecordingChanged,
    StateChanged,
    Transcript,
)
from sandra_tui.call.port import (
    AudioStatus,
    Coalescer,
    Flags,
    HistorySnapshot,
    HistorySnapshots,
    audio_status,
    device_infos,
)

log = logging.getLogger(__name__)
# Events after which the audio status or the flags may differ (talk() publishes nothing).
STATUS_EVENTS = (MuteChanged, DevicesChanged, StateChanged, RecordingChanged, Transcript)
ATTACH_WAIT_S = 15.0


class ControllerPort:
    """`controller` may be None with a thread: the port is up at once (idle, empty) and
    `attach(build)` brings the controller later, built on the call thread, so the UI paints
    before the call's libraries are imported (issue #23). Commands wait for it."""

    def __init__(self, controller, thread=None) -> None:
        self._controller = controller  # touched only by the call half (methods named _call_*)
        self._thread = thread
        self._subscribers: list = []
        self._ui_loop: asyncio.AbstractEventLoop | None = None
        self._call_loop: asyncio.AbstractEventLoop | None = None
        self._logger = None
        self._telemetry = None  # the uploader: it lives on the call thread
        self.coalescer: Coalescer | None = None
        self._attached: concurrent.futures.Future | None = None
        if controller is None:
            self._attached = concurrent.futures.Future()  # done once attach() has brought it
            self._state, self._audio, self._history, self._config = CallState.IDLE, AudioStatus(), HistorySnapshot(), None
            self._flags = (False, False)
            return
        views = thread.run(self._call_attach) if thread is not None else self._call_attach()
        self._state, self._audio, self._history, self._config, self._flags = views

    async def attach(self, build):
        """Run `build()` on the call thread: it returns (controller, extra); the port then serves
        that controller and returns `extra`. The views it starts from go to the subscribers."""
        if self._attached is None or self._attached.done():
            raise RuntimeError("the port has its controller already")

        def on_call_thread():
            try:
                self._controller, extra = build()
                self._state, self._audio, self._history, self._config, self._flags = self._call_attach()
            except BaseException as exc:
                self._attached.set_exception(exc)
                raise
            self._attached.set_result(None)
            return extra

        extra = await self._thread.run_async(on_call_thread)
        self._deliver((self._audio, self._history))
        return extra

    # -- UI half: reads -----------------------------------------------------------------------
    @property
    def state(self) -> CallState:
        return self._state

    @property
    def recording(self) -> bool:
        return self._flags[0]

    @property
    def voice_locked(self) -> bool:
        return self._flags[1]

    @property
    def can_record(self) -> bool:
        return True

    def audio_status(self) -> AudioStatus:
        return self._audio

    def history_snapshot(self) -> HistorySnapshot:
        return self._history

    def settings(self):
        if self._config is None:
            try:  # a dialog opened in the first second: a short wait
                self._attached.result(ATTACH_WAIT_S)
            except concurrent.futures.TimeoutError:
                raise RuntimeError("the call is still starting") from None
        return self._config.model_copy(deep=True)

    def subscribe(self, callback):
        try:
            self._ui_loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _deliver(self, batch: tuple[Event, ...]) -> None:
        for event in batch:
            if isinstance(event, StateChanged):
                self._state = event.state
            elif isinstance(event, AudioStatus):
                self._audio = event
            elif isinstance(event, HistorySnapshot):
                self._history = event
            elif isinstance(event, Flags):
                self._flags = (event.recording, event.voice_locked)
        for callback in list(self._subscribers):
            for event in batch:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - one broken subscriber must not starve the others
                    log.exception("port subscriber %r failed on %s", callback, event.kind)

    # -- UI half: commands --------------------------------------------------------------------
    async def _run(self, function, *args):
        if self._attached is not None and not self._attached.done():  # attach() will bring it
            await asyncio.wrap_future(self._attached)
        elif self._attached is not None:
            self._attached.result()  # the build failed: every command says why
        if self._thread is not None:
            return await self._thread.run_async(function, *args)
        result = function(*args)
        return await result if inspect.isawaitable(result) else result

    async def _command(self, name: str, *args):
        async def on_call_loop():
            result = getattr(self._controller, name)(*args)
            if inspect.isawaitable(result):
                result = await result
            self._call_status()  # talk() and the like publish nothing: the status says it
            if self._controller.history.revision != self._snapshots.sent.revision:
                self.coalescer.poke()
            return result

        return await self._run(on_call_loop)

    async def start(self) -> None:
        await self._command("start")

    async def retry(self) -> None:
        await self._command("retry")

    async def hangup(self) -> None:
        await self._command("hangup")

    async def close(self) -> None:
        await self._command("close")
        await self._run(self._call_detach)

    async def set_muted(self, muted: bool) -> None:
        await self._command("set_muted", muted)

    async def toggle_mute(self) -> bool:
        return bool(await self._command("toggle_mute"))

    async def set_push_to_talk(self, enabled: bool) -> None:
        await self._command("set_push_to_talk", enabled)

    async def talk(self, pressed: bool) -> None:
        await self._command("talk", pressed)

    async def send_text(self, text: str) -> None:
        await self._command("send_text", text)

    async def cancel_response(self) -> None:
        await self._command("cancel_response")

    async def clear_history(self) -> None:
        await self._command("clear_history")

    async def list_devices(self):
        return await self._run(lambda: device_infos(self._controller.list_devices()))

    async def rescan_devices(self):
        async def on_call_loop():  # the engine restarts PortAudio and reopens its streams
            return device_infos(await self._controller.rescan_devices())

        return await self._run(on_call_loop)

    async def set_audio_levels(self, output_volume: float | None = None, mic_gain: float | None = None) -> None:
        try:
            await self._command("set_audio_levels", output_volume, mic_gain)
        finally:
            self._config = await self._run(self._call_config)

    async def mic_test(self, seconds: float = 3.0, on_phase=None):
        return await self._command("mic_test", seconds, on_phase)

    async def set_devices(self, input_device: str | None = None, output_device: str | None = None) -> None:
        try:
            await self._command("set_devices", input_device, output_device)
        finally:
            self._config = await self._run(self._call_config)

    async def set_recording(self, on: bool) -> str:
        return await self._command("set_recording", on)

    async def update_session(self, session) -> str:
        try:
            # A copy: the call thread keeps it, the UI keeps what it built.
            return await self._command("update_session", session.model_copy(deep=True)) or ""
        finally:
            self._config = await self._run(self._call_config)

    async def set_ice(self, ice) -> None:
        await self._command("set_ice", ice.model_copy(deep=True))
        self._config = await self._run(self._call_config)

    async def media_path(self):
        return await self._command("media_path")

    async def open_call_log(self, store) -> None:
        await self._run(self._call_open_log, store)

    async def close_call_log(self) -> None:
        logger = await self._run(self._call_take_log)
        if logger is not None:
            await asyncio.to_thread(logger.close)  # waits for the last row's write

    async def start_telemetry(self, factory) -> None:
        # The factory waits on the call thread: off the UI's loop. What it gives may be the
        # uploader as seen from here (CallThread.bind): the port keeps the uploader itself.
        made = await asyncio.to_thread(factory, self)
        self._telemetry = getattr(made, "target", made)

    async def close_telemetry(self, deadline_s: float = 2.0) -> None:
        uploader, self._telemetry = self._telemetry, None
        if uploader is not None:
            await self._run(uploader.close, deadline_s)

    # -- call half ----------------------------------------------------------------------------
    def _call_attach(self):
        c = self._controller
        self._snapshots = HistorySnapshots(c.history)
        self._sent_audio = audio_status(c.audio)
        self._sent_flags = Flags(c.recording, c.voice_locked)
        self.coalescer = Coalescer(self._call_send, self._call_later, extra=self._snapshots.unsent)
        self._unsubscribe = c.subscribe(self._call_event)
        return (c.state, self._sent_audio, self._snapshots.sent, self._call_config(),
                (self._sent_flags.recording, self._sent_flags.voice_locked))

    def _call_detach(self) -> None:
        self._unsubscribe()
        self.coalescer.cancel()

    def _call_config(self):
        return self._controller.config.model_copy(deep=True)

    def _call_later(self, delay: float, function):
        return asyncio.get_running_loop().call_later(delay, function)

    def _call_event(self, event: Event) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the call log's writer thread publishes too: over to the call loop
            if self._call_loop is not None:
                self._call_loop.call_soon_threadsafe(self._call_event, event)
            return
        self._call_loop = loop
        self.coalescer.push(event)
        if isinstance(event, STATUS_EVENTS):
            self._call_status()
        if self._controller.history.revision != self._snapshots.sent.revision:
            self.coalescer.poke()  # e.g. the call's summary line, added with no history event

    def _call_status(self) -> None:
        """Send the audio status and the flags when they differ from what was sent."""
        c = self._controller
        status, flags = audio_status(c.audio), Flags(c.recording, c.voice_locked)
        if status != self._sent_audio:
            self._sent_audio = status
            self.coalescer.push(status)
        if flags != self._sent_flags:
            self._sent_flags = flags
            self.coalescer.push(flags)

    def _call_send(self, batch: tuple[Event, ...]) -> None:
        ui = self._ui_loop
        if self._thread is None or ui is None:
            self._deliver(batch)
            return
        try:
            ui.call_soon_threadsafe(self._deliver, batch)
        except RuntimeError:  # the UI's loop has closed: the app is shutting down
            pass

    def _call_open_log(self, store) -> None:
        from sandra_tui.call.call_log import CallLogger

        h = self._controller.config.history
        self._logger = CallLogger(self._controller, store if h.save_calls else None,
                                  keep_days=h.keep_days, keep_calls=h.keep_calls)

    def _call_take_log(self):
        logger, self._logger = self._logger, None
        return logger

    def __repr__(self) -> str:
        return f"ControllerPort({'call thread' if self._thread is not None else 'same loop'})"

