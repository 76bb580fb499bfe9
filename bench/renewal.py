"""`python -m bench.renewal [SECONDS] [MAX_S] [RENEW_AFTER_S]`: a long call across session renewals.

A real `sandra-tui serve --session-max-s MAX_S` process (sessions end with session_expired as
OpenAI's do at 60 minutes); the client renews each after RENEW_AFTER_S, make-before-break. It
prints the switch times, the largest gap between frames received (decoded on arrival, as with a
speaker), reconnects, and whether the history survived. Default: 180 s, 40 s sessions, renew at 30 s.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.playout import PlayoutBuffer
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, ReconnectAttempt, SessionRenewed, StateChanged, Transcript
from sandra_tui.config.model import Config
from sandra_tui.shims.aioice import loopback_from_here
from tests.agent_server import ServeProcess


async def run(seconds: float, max_s: float, renew_after_s: float) -> dict:
    loopback_from_here()  # the bench's own peers too, not only the controller's
    serve = ServeProcess("--session-max-s", str(max_s)).start()
    try:
        cfg = Config(backend={"url": serve.url}, ice={"stun": []}, reconnect={"jitter": 0.0},
                     telemetry={"enabled": False}, call={"renew_after_s": renew_after_s})
        audio = AudioEngine(playout=PlayoutBuffer(target_ms=40))
        controller = CallController(cfg, audio=audio)
        events: list = []
        controller.subscribe(events.append)
        arrivals: list[float] = []
        audio.output_listeners.append(lambda samples: arrivals.append(time.monotonic()))
        await controller.start()
        while controller.state != CallState.CONNECTED:
            await asyncio.sleep(0.05)
        await controller.send_text("remember the number 42")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
        await controller.send_text("what number did I say")
        await asyncio.sleep(5)
        history = [(m.role, m.content[:40]) for m in controller.history]
        await controller.close()
    finally:
        serve.stop()
    steady = [t for t in arrivals if t > arrivals[0] + 1.0]
    gaps = sorted(b - a for a, b in zip(steady, steady[1:]))
    return {
        "seconds": seconds, "session_max_s": max_s, "renew_after_s": renew_after_s,
        "renewals": [e.switch_ms for e in events if isinstance(e, SessionRenewed)],
        "reconnect_attempts": len([e for e in events if isinstance(e, ReconnectAttempt)]),
        "reconnecting_states": len([e for e in events if isinstance(e, StateChanged)
                                    and e.state == CallState.RECONNECTING]),
        "frames": len(steady), "largest_gap_ms": round(gaps[-1] * 1000, 1) if gaps else None,
        "gaps_over_100ms": sum(g > 0.1 for g in gaps),
        "answers": len([e for e in events if isinstance(e, Transcript) and e.role == "assistant" and e.final]),
        "history": history,
    }


def main() -> None:
    args = [float(a) for a in sys.argv[1:4]]
    seconds, max_s, renew = (args + [180.0, 40.0, 30.0][len(args):])[:3]
    print(json.dumps(asyncio.run(run(seconds, max_s, renew)), indent=1))


if __name__ == "__main__":
    main()
