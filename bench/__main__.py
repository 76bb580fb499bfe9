"""`python -m bench [--quick|--full]`: this client against the baseline, side by side, on loopback.

Both clients talk to the same `sandra-tui serve --faults` process; every number is measured in
this run, and the ratio is baseline / ours (above 1: we are faster or lighter). The audio rows
run on a private PulseAudio server (bench/audio.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

from bench import launch, metrics_load, resources
from bench.audio import AudioBench
from bench.baseline import BaselineClient
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, LatencySample, ReconnectAttempt, StateChanged
from sandra_tui.call.probe_adapter import make_probe
from sandra_tui.config.model import Config
from sandra_tui.shims.aioice import loopback_from_here
from tests.agent_server import ServeProcess
from tests.coturn import Coturn, SilentUdp

CAP_S = 40.0  # give up waiting after this (the baseline may never notice)


class Ours:
    def __init__(self, url: str, stun: list[str]) -> None:
        cfg = Config(backend={"url": url}, ice={"stun": stun}, reconnect={"jitter": 0.0},
                     telemetry={"enabled": False})
        self.controller = CallController(cfg, probe=make_probe())
        self.events: list[tuple[float, object]] = []
        self.controller.subscribe(lambda e: self.events.append((time.monotonic(), e)))

    async def wait(self, predicate, timeout: float, after: int = 0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, e in self.events[after:]:
                if predicate(e):
                    return t, e
            await asyncio.sleep(0.01)
        return None, None

    async def connect(self) -> float:
        started = time.monotonic()
        await self.controller.start()
        t, _ = await self.wait(lambda e: isinstance(e, StateChanged) and e.state == CallState.CONNECTED, CAP_S)
        return t - started

    async def close(self) -> None:
        await self.controller.close()


async def faults(url: str, **patch) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/_faults", json=patch) as r:
            assert r.status == 200, await r.text()


async def time_to_connected(url: str, ice: list[str], runs: int) -> dict:
    ours, base = [], []
    for _ in range(runs):
        client = Ours(url, ice)
        ours.append(await client.connect())
        await client.close()
        b = BaselineClient(url, ice)
        started = time.monotonic()
        await b.connect()
        base.append(time.monotonic() - started)
        await b.close()
    return {"ours": ours, "baseline": base}


async def inject(url: str, fault: dict) -> None:
    """Switch the fault on: its settings, then its one-off action if it has one."""
    await faults(url, **fault.get("set", {}))
    if "action" in fault:
        await faults(url, action=fault["action"])


async def dead_path(url: str, fault: dict, runs: int) -> dict:
    """Detection (fault -> the client acts) and recovery (fault -> connected again)."""
    out = {"ours_detect": [], "ours_recover": [], "baseline_detect": [], "baseline_recover": []}
    for _ in range(runs):
        client = Ours(url, [])
        await client.connect()
        await asyncio.sleep(0.5)
        n = len(client.events)
        at = time.monotonic()
        await inject(url, fault)
        t1, _ = await client.wait(lambda e: isinstance(e, ReconnectAttempt), CAP_S, after=n)
        await faults(url, **fault.get("clear", {}))
        t2, _ = await client.wait(lambda e: isinstance(e, StateChanged) and e.state == CallState.CONNECTED,
                                  CAP_S, after=n)
        out["ours_detect"].append((t1 or at + CAP_S) - at)
        out["ours_recover"].append((t2 or at + CAP_S) - at)
        await client.close()

        b = BaselineClient(url, [])
        await b.connect()
        await asyncio.sleep(0.5)
        n = len(b.state_changes)
        at = time.monotonic()
        await inject(url, fault)
        deadline = at + CAP_S
        while time.monotonic() < deadline and not b.ice_failed.is_set() and \
                not any(s in ("failed", "closed") for _, s in b.state_changes[n:]):
            await asyncio.sleep(0.05)
        noticed = [t for t, s in b.state_changes[n:] if s in ("failed", "closed")]
        out["baseline_detect"].append((noticed[0] if noticed else deadline) - at)
        # The guide's widget reconnects on ICE "failed" only: after "closed" it never recovers.
        recovered = None
        if b.ice_failed.is_set():
            await faults(url, **fault.get("clear", {}))
            retry = BaselineClient(url, [])
            await retry.connect()
            recovered = time.monotonic() - at
            await retry.close()
        out["baseline_recover"].append(recovered if recovered is not None else CAP_S)
        await faults(url, **fault.get("clear", {}))
        await b.close()
    return out


async def response_latency(url: str, runs: int) -> dict:
    ours, base = [], []
    client = Ours(url, [])
    await client.connect()
    for i in range(runs):
        n = len(client.events)
        await client.controller.send_text(f"question {i}")
        _, e = await client.wait(lambda e: isinstance(e, LatencySample) and e.name == "text_response_latency",
                                 20, after=n)
        if e:
            ours.append(e.ms / 1000)
        await client.wait(lambda e: getattr(e, "what", "") == "reply_stopped", 30, after=n)
    await client.close()
    b = BaselineClient(url, [])
    await b.connect()
    for i in range(runs):
        await asyncio.sleep(0.3)
        b.loud_at.clear()
        sent = time.monotonic()
        b.say(f"question {i}")
        deadline = sent + 20
        while not b.loud_at and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if b.loud_at:
            base.append(b.loud_at[0] - sent)
        await asyncio.sleep(6)  # let the reply finish
    await b.close()
    return {"ours": ours, "baseline": base}


def audio_rows(rows: list[dict], mode: str, seconds: float) -> dict:
    """Mouth-to-ear at 0% and 2% loss, and CPU/RSS with audio both ways, on PulseAudio."""
    bench = AudioBench()
    stages = {}
    try:
        clicks = 5 if mode == "quick" else 40
        for loss in (0.0, 0.02):
            ours = bench.mouth_to_ear("ours", clicks, loss)
            base = bench.mouth_to_ear("baseline", clicks, loss)
            rows.append(summarize(f"mouth-to-ear via PulseAudio, {loss:.0%} loss (ms)", ours["ms"], base["ms"],
                                  "ms"))
            rows[-1]["lost_clicks"] = {"ours": ours["lost"], "baseline": base["lost"]}
            stages[f"{loss:.0%}"] = ours["stages"]
        tui = bench.tui_call(15 if mode == "quick" else 120)
        lag, playout = tui.get("lag", {}), tui.get("playout", {})
        for key in ("p50_ms", "p99_ms", "max_ms"):
            rows.append(summarize(f"TUI call: event-loop lag {key[:-3]} (ms)", [lag.get(key)], [], "ms"))
        rows.append(summarize("TUI call: playout underruns", [playout.get("underruns")], [], "x"))
        ours = bench.resources_both_ways("ours", seconds)
        base = bench.resources_both_ways("baseline", seconds)
        for key, label in (("cpu_pct", "CPU % of one core"), ("rss_slope_mb_per_h", "RSS slope (MB/h)")):
            rows.append(summarize(f"{label}, {seconds:.0f} s, audio both ways", [ours[key]], [base[key]], "x"))
    finally:
        bench.close()
    return stages


async def metrics_rows(rows: list[dict], mode: str) -> None:
    """The backend (shared by both clients, so no baseline column): POST /api/sandra/metrics
    from 150 loopback clients kept just under their 1000/min limit, then one client past it."""
    r = await metrics_load.run(5.0 if mode == "quick" else 30.0, clients=150, concurrency=32)
    rows.append(summarize("metrics POST, 150 clients at the limit: accepted/s", [r["accepted_per_s"]], [], "x"))
    rows.append(summarize("metrics POST at the limit: p50 (ms)", [r["p50_ms"]], [], "ms"))
    rows.append(summarize("metrics POST at the limit: p99 (ms)", [r["p99_ms"]], [], "ms"))
    over = r["one_client_past_limit"]
    rows.append(summarize("one client past its limit: 429 answers", [over.get(429, 0)], [], "x"))
    rows[-1]["past_limit"] = over


def launch_rows(rows: list[dict], mode: str) -> None:
    """`sandra-tui` in a tmux pane: launch -> first paint and -> connected, against a bare Textual
    app's paint measured in the same runs (bench/launch.py); `serve` start -> ready alone."""
    r = launch.measure(3 if mode == "quick" else 10)["raw"]
    rows.append(summarize("launch -> first paint, vs a bare Textual app (s)", r["paint"], r["bare_paint"]))
    rows.append(summarize("launch -> connected, vs a bare app's paint (s)", r["connected"], r["bare_paint"]))
    rows.append(summarize("serve start -> ready file (s)", r["serve_ready"], []))
    rows.append(summarize("bare aiortc process -> connected (the floor), vs a bare app's paint (s)",
                          r["aiortc_floor"], r["bare_paint"]))


def summarize(name: str, ours: list, base: list, unit: str = "s") -> dict:
    ours = [v for v in ours if v is not None]
    base = [v for v in base if v is not None]

    def stats(v):
        return {"median": statistics.median(v), "p95": float(np.percentile(v, 95)), "n": len(v)} if v else None

    o, b = stats(ours), stats(base)
    ratio = b["median"] / o["median"] if o and b and o["median"] > 0 else None
    return {"row": name, "unit": unit, "ours": o, "baseline": b, "ratio": ratio}


def _ratio(value: float | None) -> str:
    return f"{value:.1f}x" if value else "-"


def print_table(rows: list[dict], pending: list[str]) -> None:
    print(f"{'benchmark':<46} {'ours median':>12} {'ours p95':>9} {'base median':>12} {'base p95':>9} {'ratio':>7}")
    for r in rows:
        o, b = r["ours"], r["baseline"]
        fmt = (lambda s: f"{s['median']:.3f}") if r["unit"] == "s" else (lambda s: f"{s['median']:.2f}")
        print(f"{r['row']:<46} {fmt(o) if o else '-':>12} {o['p95'] if o else 0:>9.3f} "
              f"{fmt(b) if b else '-':>12} {b['p95'] if b else 0:>9.3f} "
              f"{_ratio(r['ratio']):>7}")
    for p in pending:
        print(f"{p:<46} not measured yet")


async def main(mode: str) -> int:
    runs = 3 if mode == "quick" else 10
    loopback_from_here()  # the bench's own peers too, not only the controller's
    serve = ServeProcess("--faults").start()
    coturn = Coturn().start()
    silent = [SilentUdp() for _ in range(6)]
    rows = []
    try:
        r = await time_to_connected(serve.url, [coturn.stun_url], runs)
        rows.append(summarize("time to connected, loopback STUN (s)", r["ours"], r["baseline"]))
        seven = [s.stun_url for s in silent] + [coturn.stun_url]
        r = await time_to_connected(serve.url, seven, 1 if mode == "quick" else 3)
        rows.append(summarize("time to connected, 6 silent STUN first (s)", r["ours"], r["baseline"]))
        dead_runs = 1 if mode == "quick" else 3
        r = await dead_path(serve.url, {"set": {"path_dead": True}, "clear": {"path_dead": False}}, dead_runs)
        rows.append(summarize("dead path (silent peer): detection (s)", r["ours_detect"], r["baseline_detect"]))
        rows.append(summarize("dead path (silent peer): recovery (s)", r["ours_recover"], r["baseline_recover"]))
        r = await dead_path(serve.url, {"action": "close_pc"}, dead_runs)
        rows.append(summarize("peer closed: detection (s)", r["ours_detect"], r["baseline_detect"]))
        rows.append(summarize("peer closed: recovery (s)", r["ours_recover"], r["baseline_recover"]))
        r = await response_latency(serve.url, runs)
        rows.append(summarize("typed text -> first reply audio (s)", r["ours"], r["baseline"]))
        seconds = 10 if mode == "quick" else 600
        resources.WARMUP_S = 5.0 if mode == "quick" else 10.0
        base = await asyncio.to_thread(resources.baseline, serve.url, seconds)
        ours = await asyncio.to_thread(resources.headless, serve.url, seconds)
        tui = await asyncio.to_thread(resources.with_tui, serve.url, seconds)
        for key, label in (("cpu_pct", "CPU % of one core"), ("rss_mb", "RSS at the end (MB)"),
                           ("rss_slope_mb_per_h", "RSS slope (MB/h)")):
            for name, measured in (("no UI", ours), ("TUI in tmux", tui)):
                rows.append(summarize(f"{label}, {seconds:.0f} s call, {name}", [measured[key]], [base[key]], "x"))
    finally:
        for s in silent:
            s.close()
        coturn.stop()
        serve.stop()
    stages = await asyncio.to_thread(audio_rows, rows, mode, seconds)
    await metrics_rows(rows, mode)
    await asyncio.to_thread(launch_rows, rows, mode)
    pending = []
    print_table(rows, pending)
    print("\nour mouth-to-ear by stage, median ms (edge trace + agent mirror trace):")
    for loss, by_stage in stages.items():
        print(f"  {loss:>3} loss: " + ", ".join(f"{k} {v:.1f}" for k, v in by_stage.items()))
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{mode}.json").write_text(json.dumps({"mode": mode, "at": time.time(), "rows": rows,
                                                  "stages": stages, "cap_s": CAP_S}, indent=2))
    print(f"\n(recovery/detection capped at {CAP_S:.0f} s: a capped baseline value means it never did)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs (under 3 minutes)")
    parser.add_argument("--full", action="store_true", help="more runs")
    args = parser.parse_args()
    sys.exit(asyncio.run(main("full" if args.full else "quick")))
