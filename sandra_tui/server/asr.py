"""Speech recognition for the local agent: PocketSphinx (BSD licence), whose wheel ships the
en-US acoustic model and the CMU pronouncing dictionary, so nothing is downloaded at run time.

The language model is built once per process from asr_corpus (pocketsphinx.lm.ArpaBoLM, the
library's own builder) with a dictionary of just its words; decoders are pooled and lent to
calls. Every decoder runs on one shared worker thread, never on the event loop: PocketSphinx
holds the GIL while it decodes, so audio goes over in 100 ms pieces (about 4 ms of work each)
and the loop waits at most that long for the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soxr

from sandra_tui.media.constants import SAMPLE_RATE

log = logging.getLogger("sandra_tui.server.asr")
RATE_IN, RATE = SAMPLE_RATE, 16000
CHUNK_S = 0.1  # audio handed to the decoder at a time
MAX_IDLE_DECODERS = 8
CMN_INIT = "45,4,-3,10,-10,-2,2,-8,0,-6,6,-6,-2"
TONE_WINDOW = 1600  # 100 ms at 16 kHz: 10 Hz bins
TONE_SHARE = 0.9  # of the energy in TONE_PEAKS bins: a steady tone (measured: tones 1.0, speech 0.31-0.53)
TONE_PEAKS = 12

_lock = threading.Lock()  # the process's model and thread
_pool_lock = threading.Lock()  # idle decoders
_model: "SpeechModel | None" = None
_executor: ThreadPoolExecutor | None = None


def available() -> bool:
    return importlib.util.find_spec("pocketsphinx") is not None


def executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="sandra-asr")
        return _executor


def shared_model() -> "SpeechModel | None":
    """The process's model, built on first use (about 30 ms); None without PocketSphinx."""
    global _model
    with _lock:
        if _model is None and available():
            _model = SpeechModel()
        return _model


class SpeechModel:
    def __init__(self) -> None:
        from pocketsphinx import get_model_path
        from pocketsphinx.lm import ArpaBoLM

        from sandra_tui.server.asr_corpus import corpus

        started = time.monotonic()
        text = "\n".join(corpus())
        lm = ArpaBoLM(text=None, add_start=True, case="lower")
        lm.read_corpus(io.StringIO(text))
        lm.compute()
        out = io.StringIO()
        lm.write(out)
        self.arpa = out.getvalue()
        self.words = {w for w in text.split()}
        root = get_model_path()
        self.hmm = os.path.join(root, "en-us", "en-us")
        with open(os.path.join(root, "en-us", "cmudict-en-us.dict"), encoding="utf-8") as f:
            self.dictionary = "".join(line for line in f if line.split(" ", 1)[0].split("(")[0] in self.words)
        self._idle: list = []
        self.decoders_made = 0
        self.give_back(self.decoder())  # fail here, at start, rather than in a call
        log.info("speech model: %d words, built in %.0f ms", len(self.words), (time.monotonic() - started) * 1000)

    def decoder(self):
        """A decoder from the pool, or a new one (PocketSphinx reads its models from files:
        they are written to a private temporary directory that is removed at once)."""
        from pocketsphinx import Decoder

        with _pool_lock:
            if self._idle:
                decoder = self._idle.pop()
                # a new call is a new voice: the cepstral mean the last call adapted to goes
                # (carried over, a buzz after another call's speech decoded as "what")
                decoder.set_cmn(CMN_INIT)
                return decoder
        with tempfile.TemporaryDirectory(prefix="sandra-asr-") as tmp:
            lm_path, dict_path = os.path.join(tmp, "sandra.lm"), os.path.join(tmp, "sandra.dict")
            with open(lm_path, "w", encoding="utf-8") as f:
                f.write(self.arpa)
            with open(dict_path, "w", encoding="utf-8") as f:
                f.write(self.dictionary)
            # lw/wip: a heavier language model and a word insertion penalty measured best on
            # espeak-ng's voice (WER 19% -> 17% on tests/agent's phrases; fewer stray "are"/"you")
            # cmninit: the cepstral mean of speech at a normal level (measured), so that a new
            # decoder's first utterance is not decoded against the model's default (WER 19% -> 7%)
            decoder = Decoder(hmm=self.hmm, lm=lm_path, dict=dict_path, loglevel="FATAL", lw=10.0, wip=0.2,
                              cmninit=CMN_INIT)
        self.decoders_made += 1
        return decoder

    def give_back(self, decoder) -> None:
        with _pool_lock:
            if len(self._idle) < MAX_IDLE_DECODERS:
                self._idle.append(decoder)


class Recognizer:
    """One call's recognition: one utterance at a time, fed from the event loop.

    `begin`, `feed`, `end` and `cancel` only queue work; a task sends it to the ASR thread in
    order. `on_partial(text)` is called on the loop as the hypothesis grows; `end()` returns a
    future with the final words. `cpu_s` is the decoder's CPU time (thread time) for this call.
    """

    def __init__(self, model: SpeechModel, on_partial: Callable[[str], None] | None = None) -> None:
        self.model = model
        self.on_partial = on_partial
        self._decoder = model.decoder()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._active = False
        self._pending: list[np.ndarray] = []
        self._pending_len = 0
        self.cpu_s = 0.0
        self.audio_s = 0.0
        self.utterances = 0
        self._tone = ToneMeter()

    @property
    def active(self) -> bool:
        return self._active

    def _ensure_task(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="asr")

    def begin(self, frames: list[np.ndarray]) -> None:
        self._ensure_task()
        if self._active:
            self.cancel()
        self._active = True
        self._queue.put_nowait(("begin", None))
        for frame in frames:
            self.feed(frame)

    def feed(self, samples: np.ndarray) -> None:
        if not self._active:
            return
        self._pending.append(samples)
        self._pending_len += len(samples)
        if self._pending_len >= CHUNK_S * RATE_IN:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._queue.put_nowait(("audio", np.concatenate(self._pending)))
            self._pending, self._pending_len = [], 0

    def end(self) -> asyncio.Future:
        """The utterance is over: a future with its words ("" when none were recognised)."""
        future = asyncio.get_running_loop().create_future()
        if not self._active:
            future.set_result("")
            return future
        self._flush()
        self._active = False
        self._queue.put_nowait(("end", future))
        return future

    def recognize(self, frames: list[np.ndarray]) -> asyncio.Future:
        """A whole utterance at once (a turn committed by hand)."""
        self.begin(frames)
        return self.end()

    def cancel(self) -> None:
        self._pending, self._pending_len = [], 0
        if self._active:
            self._active = False
            self._queue.put_nowait(("cancel", None))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pool = executor()
        resampler = None
        while True:
            op, arg = await self._queue.get()
            try:
                if op == "begin":
                    resampler = soxr.ResampleStream(RATE_IN, RATE, 1, dtype="int16")
                    self._tone = ToneMeter()
                    await loop.run_in_executor(pool, self._timed, self._decoder.start_utt)
                elif op == "audio" and resampler is not None:
                    self.audio_s += len(arg) / RATE_IN
                    partial = await loop.run_in_executor(pool, self._timed, self._process, resampler, arg)
                    if partial and self.on_partial is not None and self._active:
                        self.on_partial(partial)
                elif op in ("end", "cancel") and resampler is not None:
                    resampler, stream = None, resampler
                    words = await loop.run_in_executor(pool, self._timed, self._finish, stream)
                    self.utterances += 1
                    if op == "end" and not arg.done():
                        arg.set_result(words)
                elif op == "end" and not arg.done():
                    arg.set_result("")
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a decoder error costs this utterance, not the call
                log.exception("speech recognition failed")
                resampler = None
                if op == "end" and not arg.done():
                    arg.set_result("")

    def _timed(self, fn, *args):
        started = time.thread_time()
        try:
            return fn(*args)
        finally:
            self.cpu_s += time.thread_time() - started

    def _process(self, resampler, samples: np.ndarray) -> str | None:
        pcm = resampler.resample_chunk(samples)
        if len(pcm):
            self._decoder.process_raw(pcm.tobytes(), False, False)
            self._tone.feed(pcm)
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else None

    def _finish(self, resampler) -> str:
        pcm = resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        if len(pcm):
            self._decoder.process_raw(pcm.tobytes(), False, False)
            self._tone.feed(pcm)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        words = hyp.hypstr.strip() if hyp is not None else ""
        if words and self._tone.steady():
            log.debug("a steady tone, not speech: %r dropped", words)
            return ""
        return words

    async def close(self) -> None:
        """Stop the task; the decoder goes back to the pool once the thread is done with it."""
        self.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            # after any job still on the thread; end_utt on an idle decoder is harmless
            done = executor().submit(_reset, decoder)
            done.add_done_callback(lambda f: self.model.give_back(decoder) if not f.exception() else None)


class ToneMeter:
    """Is an utterance a steady tone (a beep, a hum, a ring-back tone)? Its long-term spectrum
    then sits in a few narrow bins; speech moves its pitch and spreads. PocketSphinx decodes
    a buzz as a short word ("what", "all"), and a tone has no words."""

    def __init__(self) -> None:
        self._carry = np.zeros(0, dtype=np.float32)
        self._power = np.zeros(TONE_WINDOW // 2 + 1)
        self._window = np.hanning(TONE_WINDOW)

    def feed(self, pcm: np.ndarray) -> None:
        x = np.concatenate([self._carry, pcm.astype(np.float32)])
        n = len(x) // TONE_WINDOW * TONE_WINDOW
        for start in range(0, n, TONE_WINDOW):
            self._power += np.abs(np.fft.rfft(x[start : start + TONE_WINDOW] * self._window)) ** 2
        self._carry = x[n:]

    def steady(self) -> bool:
        total = float(self._power.sum())
        if total <= 0:
            return False
        return float(np.sort(self._power)[-TONE_PEAKS:].sum()) / total >= TONE_SHARE


def _reset(decoder) -> None:
    with contextlib.suppress(Exception):
        decoder.end_utt()
