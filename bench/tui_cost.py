"""`python -m bench.tui_cost [SECONDS] [--text-only]`: what the TUI costs over `call --headless`.

Both clients call one `sandra-tui serve --faults` at the same time (silence both ways, no audio
devices), so they share the machine's load; each is sampled from /proc once a second after the
warm-up (bench/resources.py). The difference, TUI minus headless, is the TUI's own cost.

Without devices the headless call never loads PortAudio; the TUI tries the configured devices
first (PortAudio, ALSA's configuration, the echo canceller: about 33 MB here) and then goes
text only. `--text-only` starts the TUI without trying, so the two load the same audio code.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from bench import resources
from tests.agent_server import ServeProcess


def measure(seconds: float, text_only: bool = False) -> dict:
    serve = ServeProcess("--faults").start()
    try:
        with ThreadPoolExecutor(2) as pool:
            headless = pool.submit(resources.headless, serve.url, seconds)
            tui = pool.submit(resources.with_tui, serve.url, seconds, ("--text-only",) if text_only else ())
            result = {"seconds": seconds, "warmup_s": resources.WARMUP_S, "tui_text_only": text_only,
                      "headless": headless.result(), "tui": tui.result()}
    finally:
        serve.stop()
    h, t = result["headless"], result["tui"]
    if h["cpu_pct"] is not None and t["cpu_pct"] is not None:
        result["tui_extra_cpu_points"] = round(t["cpu_pct"] - h["cpu_pct"], 2)
        result["tui_extra_rss_mb"] = round(t["rss_mb"] - h["rss_mb"], 1)
    return result


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    print(json.dumps(measure(float(numbers[0]) if numbers else 600.0, "--text-only" in sys.argv), indent=1))
