"""The measuring end of a mouth-to-ear benchmark: one duplex PortAudio stream that plays a
click into the client's microphone sink and listens to the client's speaker monitor.

Run with PULSE_SINK / PULSE_SOURCE pointing at those (and PULSE_SERVER at the private server).
Input and output share the stream's clock, so each click's delay is the ADC time of its echo
minus the DAC time of the click, sample-accurate up to PortAudio's latency estimates. Prints
one JSON line per click: {"click": n, "ms": delay or null}.

python -m bench.pulse_rig CLICKS [GAP_S]
"""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
import sounddevice as sd

RATE = 48000
CLICK = (np.sin(2 * np.pi * 1000 * np.arange(RATE // 50) / RATE) * 20000).astype(np.int16)  # 20 ms
THRESHOLD = 2000  # peak of an arriving click (about -24 dBFS)
MAX_WAIT_S = 1.0  # a click not back by then is lost


def main(clicks: int, gap_s: float) -> int:
    gap = int(gap_s * RATE)
    state = {"n": 0, "pos": 0, "sent_at": None, "waiting": False, "done": threading.Event()}
    results = []

    def callback(indata, outdata, frames, time_info, status) -> None:
        out = np.zeros(frames, dtype=np.int16)
        if state["n"] < clicks:
            period_pos = state["pos"] % gap
            if period_pos < frames and not state["waiting"]:  # a click starts in this block
                start = 0 if period_pos == 0 else frames - period_pos
                start = min(start, frames - 1)
                n = min(len(CLICK), frames - start)
                out[start : start + n] = CLICK[:n]
                state["sent_at"] = time_info.outputBufferDacTime + start / RATE
                state["waiting"] = True
        outdata[:, 0] = out
        state["pos"] += frames
        if state["waiting"]:
            loud = np.nonzero(np.abs(indata[:, 0].astype(np.int32)) > THRESHOLD)[0]
            arrived = time_info.inputBufferAdcTime + (loud[0] / RATE if len(loud) else 0)
            if len(loud) and arrived > state["sent_at"]:
                results.append((arrived - state["sent_at"]) * 1000)
                print(json.dumps({"click": state["n"], "ms": round(results[-1], 1)}), flush=True)
                state["waiting"] = False
                state["n"] += 1
            elif time_info.inputBufferAdcTime - state["sent_at"] > MAX_WAIT_S:
                print(json.dumps({"click": state["n"], "ms": None}), flush=True)
                state["waiting"] = False
                state["n"] += 1
        if state["n"] >= clicks:
            state["done"].set()

    with sd.Stream(samplerate=RATE, channels=1, dtype="int16", blocksize=240, latency=0.02, callback=callback):
        state["done"].wait(clicks * (gap_s + MAX_WAIT_S) + 10)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.6))
