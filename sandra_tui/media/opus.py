"""Mono Opus, encoded and decoded on the event loop (PyAV's libopus); client and agent both.

aiortc's own codecs are stereo (a mono microphone is upmixed and encoded at 96 kbit/s) and run
on other threads: encoding through the default thread pool, decoding on a decoder thread that
posts every frame back to the loop, so each 20 ms frame crossed threads twice each way. Mono
voice at 32 kbit/s costs about half the encoding, and with no hand-offs the codec work is done
where the packets are: on the loop.

Outgoing tracks return `av.Packet`s, which aiortc sends as they are (`Encoder.pack`).
Incoming packets are decoded in the receiver's jitter-buffer slot (`DirectDecoder`), straight
into the playout buffer, so aiortc's decoder thread stays idle.
"""

from __future__ import annotations

import logging

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sandra_tui.media import rtp_passthrough
from sandra_tui.media.rtp_passthrough import PassThroughJitterBuffer, ReorderSafeMapper
from sandra_tui.media.constants import SAMPLE_RATE, TIME_BASE
from sandra_tui.shims import aiortc as aiortc_shim

log = logging.getLogger(__name__)

BITRATE = 32000  # mono voice: what libwebrtc sends unless the far end asks for stereo
# After this many all-zero frames libopus has settled: every further one encodes to the same
# 3-byte packet (tests/audio/test_opus.py checks 500 of them, and that the speech after a copied
# run decodes within -30 dB of libopus's own; measured -39.5 dB).
SILENCE_SETTLED = 4


def make_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    """Mono int16 samples -> an av.AudioFrame at 48 kHz with pts/time_base set."""
    data = np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class OpusEncoder:
    def __init__(self, bitrate: int = BITRATE) -> None:
        codec = av.CodecContext.create("libopus", "w")
        codec.bit_rate = bitrate
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = SAMPLE_RATE
        codec.time_base = TIME_BASE
        codec.options = {"application": "voip"}
        self._codec = codec
        self._frame: av.AudioFrame | None = None  # reused: libopus is done with it when encode returns
        # Digital silence (a silent agent, a muted mic) costs libopus as much as speech, 0.3 ms a
        # frame idle and ~1 ms under load: 20 calls on one loop spent it all encoding silence.
        # Once settled, the packet it would make is known, so it is copied instead.
        self._zero_run = 0
        self._silent_packet: tuple[int, bytes] | None = None  # (frame length, packet)
        self.reused = 0  # silent frames sent without running the encoder

    def encode(self, samples: np.ndarray, pts: int) -> av.Packet | None:
        """One 20 ms frame in, its packet out, stamped with the frame's own pts (the encoder's
        look-ahead is constant and means nothing to the far end)."""
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        if samples.any():
            self._zero_run = 0
        else:
            self._zero_run += 1
            silent = self._silent_packet
            if silent is not None and silent[0] == len(samples) and self._zero_run > SILENCE_SETTLED:
                self.reused += 1
                return self._stamp(av.Packet(silent[1]), pts)
        frame = self._frame
        if frame is None or frame.samples != len(samples):
            frame = self._frame = make_frame(samples, pts)
        else:  # copying into the last frame costs a fifth of building one
            frame.planes[0].update(samples)
            frame.pts = pts
        packets = self._codec.encode(frame)
        if not packets:
            return None
        packet = packets[-1]
        if self._zero_run == SILENCE_SETTLED:
            self._silent_packet = (len(samples), bytes(packet))
        return self._stamp(packet, pts)

    @staticmethod
    def _stamp(packet: av.Packet, pts: int) -> av.Packet:
        packet.pts = pts
        packet.time_base = TIME_BASE
        return packet


class OpusTrack(MediaStreamTrack):
    """An outgoing audio track that hands aiortc Opus packets; subclasses give the samples."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._encoder = OpusEncoder()

    async def next_frame(self) -> tuple[np.ndarray, int]:
        """The next 20 ms of mono int16 samples and their pts, when they are due."""
        raise NotImplementedError

    async def recv(self) -> av.Packet:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            samples, pts = await self.next_frame()
            packet = self._encoder.encode(samples, pts)
            if packet is not None:  # libopus gives one packet per 20 ms frame; never nothing in practice
                return packet


class OpusDecoder:
    def __init__(self) -> None:
        codec = av.CodecContext.create("libopus", "r")
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = SAMPLE_RATE
        self._codec = codec

    def decode(self, payload: bytes) -> np.ndarray:
        """An Opus packet -> mono int16 samples (a stereo stream is downmixed by libopus)."""
        frames = self._codec.decode(av.Packet(payload))
        if len(frames) == 1:
            return frames[0].to_ndarray().reshape(-1)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]) if frames else np.zeros(0, np.int16)


class DirectDecoder(PassThroughJitterBuffer):
    """Sits in the audio receiver's jitter-buffer slot: Opus packets are decoded here and
    handed to `on_samples(samples, pts)`; aiortc's decoder thread gets nothing.

    Anything that is not Opus (a peer that chose PCMU) is passed on to aiortc's decoder as
    before, so its remote track still carries it.
    """

    def __init__(self, receiver, on_samples) -> None:
        super().__init__()
        self._receiver = receiver
        self._on_samples = on_samples
        self._decoder = OpusDecoder()
        self._mapper = ReorderSafeMapper()
        self._is_opus: dict[int, bool] = {}
        self.decoded = 0
        self.errors = 0

    def add(self, packet):
        flag, frame = super().add(packet)
        if frame is None:
            return flag, None
        if not self._opus(packet.payload_type):
            return flag, frame  # aiortc's decoder takes it
        pts = self._mapper.map(packet.timestamp)
        if not frame.data:  # an empty payload carries no audio: the playout buffer conceals it
            return flag, None
        try:
            samples = self._decoder.decode(frame.data)
        except av.FFmpegError as exc:
            self.errors += 1
            if self.errors == 1:
                log.warning("opus: a packet failed to decode (%s); it counts as lost", exc)
            return flag, None
        self.decoded += 1
        self._on_samples(samples, pts)
        return flag, None

    def _opus(self, payload_type: int) -> bool:
        known = self._is_opus.get(payload_type)
        if known is None:
            codec = aiortc_shim.receiver_codec(self._receiver, payload_type)
            known = self._is_opus[payload_type] = codec is not None and codec.name.lower() == "opus"
            if not known:
                log.info("remote audio is not Opus (payload type %s): aiortc decodes it", payload_type)
        return known


def install_decoder(receiver, on_samples) -> DirectDecoder | None:
    """Put a DirectDecoder in the receiver; None (aiortc's path stays) if aiortc changed."""
    decoder = DirectDecoder(receiver, on_samples)
    if not rtp_passthrough.install(receiver, decoder):
        return None
    return decoder
