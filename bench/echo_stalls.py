"""`python -m bench.echo_stalls`: how much echo the canceller removes when the speaker's
callback runs late, offline (no devices, exact and repeatable).

A late speaker callback (a busy CPU) makes the device run dry: it plays silence until it is fed
again, and the microphone hears that silence. The canceller's far end (`render`) only gets
what was handed to the speaker, so after each stall the far end runs ahead of the echo by the
stall's length. This measures, for speech with a 50 ms echo at -6 dB and an 80 ms stall every
400 ms, the echo reduction in the second half of 8 s:
- no stalls;
- stalls, far end told nothing (what the client does today);
- stalls, the silence given to the far end block by block as it is played;
- stalls, the silence given in one burst when the speaker is back.
Measured here: 32.2, 23.5, 35.7 and 19.2 dB. The cause of the echo test's failures under heavy
load is likely this one; a fix must give the silence as it happens (from the microphone's
side), and needs a DAC/ADC clock the two streams share. Tried with PortAudio's DAC and ADC
times on PulseAudio (offline 36.5 dB against 27.6): on the devices beside stress-ng it counted
up to twice the silence really played, and two A/B rounds of 4+4 runs disagreed (mean 27 vs 21
dB, then 19 vs 28 dB reduction, with vs without), so it is not in.
"""

from __future__ import annotations

import numpy as np

from sandra_tui.audio.echo import BLOCK, EchoCanceller
from tests.pulse import speech_like

STALL_EVERY = 40  # blocks of 10 ms
STALL = 8
ECHO_DELAY = 2400  # samples (50 ms)


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / 32768**2 + 1e-12)


def reduction_db(stalls: bool, silence: str = "none") -> float:
    """`silence`: "none" (far end not told), "interleaved" (a block per capture as it plays),
    "burst" (all of it with the first block after the stall)."""
    far = speech_like(8.0, amplitude=12000)
    source = [far[k * BLOCK : (k + 1) * BLOCK] for k in range(len(far) // BLOCK)]
    zero = np.zeros(BLOCK, np.int16)
    played, renders = [], []  # per 10 ms step: what the device played, what reached the far end
    for n, block in enumerate(source):
        if stalls and n % STALL_EVERY == STALL_EVERY - 1:
            for _ in range(STALL):
                played.append(zero)
                renders.append([zero] if silence == "interleaved" else [])
            renders.append(([zero] * STALL if silence == "burst" else []) + [block])
        else:
            renders.append([block])
        played.append(block)
    speaker = np.concatenate(played)
    mic = (np.concatenate([np.zeros(ECHO_DELAY, np.int16), speaker[:-ECHO_DELAY]]) * 0.5).astype(np.int16)
    canceller = EchoCanceller()
    out = []
    for step, blocks in enumerate(renders):
        for block in blocks:
            canceller.render(block)
        out.append(canceller.capture(mic[step * BLOCK : (step + 1) * BLOCK]))
    sent = np.concatenate(out)
    half = len(sent) // 2
    return rms_db(mic[half : len(sent)]) - rms_db(sent[half:])


def main() -> None:
    rows = [("no stalls", reduction_db(False)), ("stalls, far end not told", reduction_db(True)),
            ("stalls, silence as it plays", reduction_db(True, "interleaved")),
            ("stalls, silence in one burst", reduction_db(True, "burst"))]
    for name, db in rows:
        print(f"{name:32s} {db:5.1f} dB less echo")


if __name__ == "__main__":
    main()
