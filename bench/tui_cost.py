"""`python -m bench.tui_cost [SECONDS] [--text-only | --pulse]`: what the TUI costs over `call --headless`.

Both clients call one `sandra-tui serve --faults` at the same time (silence both ways), so they
share the machine's load; each is sampled from /proc once a second after the warm-up
(bench/resources.py). The difference, TUI minus headless, is the TUI's own cost.

Like for like, three ways:
- default: the TUI as an operator starts it (it tries the configured devices, then goes text
  only when there are none) against `call --headless` (no devices);
- `--text-only`: the TUI started without devices, the same audio code as headless;
- `--pulse`: both on real devices, null sinks of a private PulseAudio (tests/pulse.py): the TUI
  on its configured (default) devices against `call --headless --devices`.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from bench import resources
from tests.agent_server import ServeProcess


def measure(seconds: float, text_only: bool = False, pulse: bool = False) -> dict:
    sound = None
    if pulse:
        from tests.pulse import Pulse

        sound = Pulse().start()
    env = sound.env if sound else None
    serve = ServeProcess("--faults").start()
    try:
        with ThreadPoolExecutor(2) as pool:
            headless = pool.submit(resources.headless, serve.url, seconds, ("--devices",) if pulse else (), env)
            tui = pool.submit(resources.with_tui, serve.url, seconds, ("--text-only",) if text_only else (), env)
            result = {"seconds": seconds, "warmup_s": resources.WARMUP_S, "tui_text_only": text_only,
                      "pulse_devices": pulse, "headless": headless.result(), "tui": tui.result()}
    finally:
        serve.stop()
        if sound is not None:
            sound.stop()
    h, t = result["headless"], result["tui"]
    if h["cpu_pct"] is not None and t["cpu_pct"] is not None:
        result["tui_extra_cpu_points"] = round(t["cpu_pct"] - h["cpu_pct"], 2)
        result["tui_extra_rss_mb"] = round(t["rss_mb"] - h["rss_mb"], 1)
    return result


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--text-only" in sys.argv and "--pulse" in sys.argv:
        sys.exit("bench.tui_cost: --text-only and --pulse measure different things; pick one")
    print(json.dumps(measure(float(numbers[0]) if numbers else 600.0, "--text-only" in sys.argv,
                             "--pulse" in sys.argv), indent=1))
