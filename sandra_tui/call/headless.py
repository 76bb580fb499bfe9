"""`sandra-tui call --headless`: a call with no UI, one JSON object per line per event.

Exit codes: 0 clean hang-up, 1 the call failed, 2 bad arguments or set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time

from sandra_tui.call.events import AudioLevels, CallState, Event, StateChanged
from sandra_tui.heap import freeze_long_lived


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
    def __init__(self, out=sys.stdout, levels: bool = False) -> None:
        self.out = out
        self.start = time.monotonic()
        self.levels = levels

    def __call__(self, event: Event) -> None:
        if isinstance(event, AudioLevels) and not self.levels:
            return
        self.raw(event.to_dict())

    def raw(self, data: dict) -> None:
        record = {"t": round(time.monotonic() - self.start, 3), **data}
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()


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
    controller.subscribe(printer)
    if getattr(args, "trace_audio", False):
        from sandra_tui.audio.trace import EdgeTrace

        loop = asyncio.get_running_loop()
        audio.set_trace(EdgeTrace(on_edge=lambda stage, t: loop.call_soon_threadsafe(
            printer.raw, {"event": "trace", "stage": stage, "mono": round(t, 6)})))
    uploader = attach_telemetry(controller)
    connected = asyncio.Event()
    done = asyncio.Event()

    def watch(event: Event) -> None:
        if isinstance(event, StateChanged):
            if event.state == CallState.CONNECTED:
                connected.set()
            elif event.state in (CallState.FAILED, CallState.ENDED):
                done.set()

    controller.subscribe(watch)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    freeze_long_lived()  # see sandra_tui/heap.py
    await controller.start()
    try:
        waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(stop.wait())]
        if args.say:
            async def say() -> None:
                await connected.wait()
                for text in args.say:
                    await controller.send_text(text)
            waiters.append(asyncio.ensure_future(say()))
        timeout = args.duration if args.duration is not None else None
        finished, _ = await asyncio.wait(waiters[:2], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
    finally:
        failed = controller.state == CallState.FAILED
        await controller.hangup()
        if uploader is not None:
            await uploader.close(deadline_s=2.0)  # the backend is still up: flush, spool the rest
        await controller.close()
    return 1 if failed else 0


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
