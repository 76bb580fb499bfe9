"""`sandra-tui call --headless`: a call with no UI, one JSON object per line per event.

Exit codes:
  0  the call connected, then ended by a hang-up (either side), SIGINT/SIGTERM/SIGHUP,
     `--duration`, or the reader of stdout going away (`| head -2`);
  1  the call failed, or never connected (however it ended);
  2  bad arguments or set-up (e.g. a missing --mic-file).

A broken stdout stops the printing and hangs up like a signal: no traceback. Whatever ends the
call, the call is hung up and closed (the embedded agent with it) before the exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import sys
import time

from sandra_tui.call.events import AudioLevels, CallState, Event, StateChanged
from sandra_tui.heap import freeze_long_lived

log = logging.getLogger("sandra_tui.call")


def build_audio(args: argparse.Namespace, config):
    """Audio for a scripted call: the devices with --devices, WAV files when given, otherwise
    silence."""
    from sandra_tui.audio.engine import AudioEngine, build_engine

    if getattr(args, "devices", False) and not args.no_audio:
        if args.mic_file or args.speaker_file:
            raise ValueError("--devices cannot be combined with --mic-file or --speaker-file")
        engine, problem = build_engine(config.audio, device_rate=args.device_rate)
        if problem:
            print(f"sandra-tui call: {problem}", file=sys.stderr)
        return engine
    from sandra_tui.audio.sinks import WavFileSink
    from sandra_tui.audio.sources import WavFileSource

    source = WavFileSource(args.mic_file) if args.mic_file else None
    sinks = [WavFileSink(args.speaker_file)] if args.speaker_file else []
    parts = []
    if args.mic_file:
        parts.append(f"mic file {args.mic_file}")
    if args.speaker_file:
        parts.append(f"speaker file {args.speaker_file}")
    return AudioEngine(source, sinks, push_to_talk=False, description=", ".join(parts) or "no audio device")


class JsonLines:
    """Prints events; when the reader goes away (EPIPE), stops printing and calls `on_broken`."""

    def __init__(self, out=None, levels: bool = False) -> None:
        self.out = out if out is not None else sys.stdout
        self.start = time.monotonic()
        self.levels = levels
        self.broken = False
        self.on_broken = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, AudioLevels) and not self.levels:
            return
        self.raw(event.to_dict())

    def raw(self, data: dict) -> None:
        if self.broken:
            return
        record = {"t": round(time.monotonic() - self.start, 3), **data}
        try:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()
        except BrokenPipeError as exc:
            self._broke(exc)
        except ValueError as exc:  # "I/O operation on a closed file"
            if not getattr(self.out, "closed", False):
                raise
            self._broke(exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.EIO):
                raise
            self._broke(exc)

    def _broke(self, exc: Exception) -> None:
        self.broken = True
        log.info("stdout is gone (%s): hanging up", exc)
        # What is still buffered would fail again at the interpreter's exit: send it nowhere.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
            os.close(devnull)
        if self.on_broken is not None:
            self.on_broken()


async def run_call(args: argparse.Namespace, config, printer) -> int:
    from sandra_tui.call.controller import CallController
    from sandra_tui.call.probe_adapter import make_probe

    try:
        audio = build_audio(args, config)
    except (OSError, ValueError, EOFError) as exc:
        print(f"sandra-tui call: {exc}", file=sys.stderr)
        return 2
    from sandra_tui.call.telemetry_link import attach_telemetry

    controller = CallController(config, audio=audio, probe=make_probe())
    uploader = None
    connected = asyncio.Event()
    done = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def on_signal() -> None:
        if stop.is_set():  # a second one: stop waiting for the teardown (atexit still kills the agent)
            raise SystemExit(1)
        stop.set()

    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    try:
        printer.on_broken = stop.set
        controller.subscribe(printer)
        if getattr(args, "trace_audio", False):
            from sandra_tui.audio.trace import EdgeTrace

            audio.set_trace(EdgeTrace(on_edge=lambda stage, t: loop.call_soon_threadsafe(
                printer.raw, {"event": "trace", "stage": stage, "mono": round(t, 6)})))
        uploader = attach_telemetry(controller)

        def watch(event: Event) -> None:
            if isinstance(event, StateChanged):
                if event.state == CallState.CONNECTED:
                    connected.set()
                elif event.state in (CallState.FAILED, CallState.ENDED):
                    done.set()

        controller.subscribe(watch)
        freeze_long_lived()  # see sandra_tui/heap.py
        await controller.start()
        waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(stop.wait())]
        if args.say:
            async def say() -> None:
                await connected.wait()
                for text in args.say:
                    await controller.send_text(text)
            waiters.append(asyncio.ensure_future(say()))
        try:
            await asyncio.wait(waiters[:2], timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
    finally:
        failed = controller.state == CallState.FAILED
        # Each step runs even when one before it fails: the controller's close (which stops the
        # embedded agent) is never skipped.
        for what, step in (("hanging up", controller.hangup),
                           ("closing telemetry", uploader and (lambda: uploader.close(deadline_s=2.0))),
                           ("closing the call", controller.close)):
            if step is None:
                continue
            try:
                await step()  # telemetry: the backend is still up: flush, spool the rest
            except Exception:  # noqa: BLE001 - the next step must still run
                log.exception("%s failed", what)
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    return 1 if failed or not connected.is_set() else 0


def run(args: argparse.Namespace) -> int:
    from sandra_tui.config.cli import load_for_cli

    if not args.headless:
        print("sandra-tui call: only --headless is available; run `sandra-tui` for the TUI", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("sandra-tui call: --duration must be positive", file=sys.stderr)
        return 2
    loaded = load_for_cli(args)
    return asyncio.run(run_call(args, loaded.config, JsonLines()))
