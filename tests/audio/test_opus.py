"""Mono Opus on the loop: encoder packets, and the direct decoder in the receiver's slot."""

from __future__ import annotations

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from sandra_tui.audio.frames import FRAME_SAMPLES, TIME_BASE
from sandra_tui.media.opus import SILENCE_SETTLED, DirectDecoder, OpusDecoder, OpusEncoder, install_decoder
from sandra_tui.media import rtp_passthrough
from sandra_tui.shims import aiortc as aiortc_shim
from tests.agent.speech import rms_dbfs


def tone(hz: float, frames: int) -> np.ndarray:
    t = np.arange(frames * FRAME_SAMPLES) / 48000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / 48000)[int(np.argmax(spectrum))])


def encode_all(samples: np.ndarray) -> list:
    encoder = OpusEncoder()
    return [encoder.encode(samples[i : i + FRAME_SAMPLES], i) for i in range(0, len(samples), FRAME_SAMPLES)]


def test_one_packet_per_frame_stamped_with_the_frame_pts():
    packets = encode_all(tone(440, 10))
    assert all(p is not None for p in packets)
    assert [p.pts for p in packets] == [i * FRAME_SAMPLES for i in range(10)]
    assert all(p.time_base == TIME_BASE for p in packets)
    assert max(p.size for p in packets[2:]) < 32000 / 8 / 50 * 2  # ~32 kbit/s, not aiortc's 96


def test_the_reused_frame_encodes_exactly_as_fresh_frames_do():
    source = np.concatenate([tone(300, 20), tone(2000, 20)])
    assert [bytes(p) for p in encode_all(source)] == fresh_packets(source)


def fresh_packets(source: np.ndarray) -> list[bytes]:
    """What libopus itself makes of `source`, every frame encoded (no reuse)."""
    import av

    from sandra_tui.media.opus import make_frame

    codec = av.CodecContext.create("libopus", "w")
    codec.bit_rate, codec.format, codec.layout, codec.sample_rate = 32000, "s16", "mono", 48000
    codec.time_base, codec.options = TIME_BASE, {"application": "voip"}
    return [bytes(p) for i in range(0, len(source), FRAME_SAMPLES)
            for p in codec.encode(make_frame(source[i : i + FRAME_SAMPLES], i))]


def decode_all(packets: list[bytes]) -> np.ndarray:
    decoder = OpusDecoder()
    return np.concatenate([decoder.decode(p) for p in packets]).astype(np.float64)


def test_settled_silence_is_copied_and_sounds_as_libopus_does():
    silence = np.zeros(500 * FRAME_SAMPLES, np.int16)
    source = np.concatenate([tone(300, 20), silence, tone(2000, 20), silence[: 10 * FRAME_SAMPLES], tone(500, 5)])
    encoder = OpusEncoder()
    packets = [encoder.encode(source[i : i + FRAME_SAMPLES], i) for i in range(0, len(source), FRAME_SAMPLES)]
    mine, ref = [bytes(p) for p in packets], fresh_packets(source)
    assert encoder.reused == (500 - SILENCE_SETTLED) + (10 - SILENCE_SETTLED)
    assert [p.pts for p in packets] == list(range(0, len(source), FRAME_SAMPLES))
    assert all(p.time_base == TIME_BASE for p in packets)
    onset = 20 + 500  # the first frame of speech after the long silence
    assert mine[:onset] == ref[:onset]  # byte for byte up to there
    # After 10 s of silence libopus has banked VBR bits and spends them on the first speech
    # (3248 bytes for those 20 frames against 2409 here, whose encoder saw 4 silent frames); the
    # difference between the two decodings measured -39.5 dB against the speech.
    a, b = decode_all(mine), decode_all(ref)
    assert len(a) == len(b) == len(source)
    speech = slice(onset * FRAME_SAMPLES, (onset + 20) * FRAME_SAMPLES)
    assert rms_dbfs(a[speech] - b[speech]) - rms_dbfs(b[speech]) < -30
    assert sum(map(len, mine[onset : onset + 20])) < 32000 / 8 * 0.4 * 1.6  # near the 32 kbit/s target


def test_a_quiet_but_not_silent_frame_is_encoded():
    encoder = OpusEncoder()
    for i in range(20):
        encoder.encode(np.zeros(FRAME_SAMPLES, np.int16), i * FRAME_SAMPLES)
    hiss = np.zeros(FRAME_SAMPLES, np.int16)
    hiss[100] = 1
    before = encoder.reused
    encoder.encode(hiss, 20 * FRAME_SAMPLES)
    assert encoder.reused == before


def test_round_trip_keeps_pitch_and_level():
    source = tone(1000, 50)
    decoder = OpusDecoder()
    out = np.concatenate([decoder.decode(bytes(p)) for p in encode_all(source)])
    assert out.dtype == np.int16 and len(out) == len(source)
    steady = out[FRAME_SAMPLES * 5 :]
    assert abs(dominant_hz(steady) - 1000) < 10
    rms_in = np.sqrt(np.mean(source.astype(np.float64) ** 2))
    rms_out = np.sqrt(np.mean(steady.astype(np.float64) ** 2))
    assert 0.7 < rms_out / rms_in < 1.3


class _Receiver:
    """Stands in for RTCRtpReceiver: only the negotiated codecs are read."""

    def __init__(self) -> None:
        setattr(self, aiortc_shim.CODECS, {
            111: RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111),
            0: RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0),
        })


def rtp(seq: int, timestamp: int, payload: bytes, payload_type: int = 111) -> RtpPacket:
    packet = RtpPacket(payload_type=payload_type, sequence_number=seq, timestamp=timestamp, payload=payload)
    aiortc_shim.set_packet_payload(packet, payload)
    return packet


def test_direct_decoder_hands_samples_on_and_aiortc_gets_nothing():
    got = []
    decoder = DirectDecoder(_Receiver(), lambda samples, pts: got.append((samples, pts)))
    packets = [bytes(p) for p in encode_all(tone(440, 4))]
    base = 4_294_966_000  # wraps during the test
    results = [decoder.add(rtp(10 + i, (base + i * FRAME_SAMPLES) & 0xFFFFFFFF, data)) for i, data in enumerate(packets)]
    assert all(frame is None for _, frame in results)
    assert [pts for _, pts in got] == [i * FRAME_SAMPLES for i in range(4)]
    assert all(len(samples) == FRAME_SAMPLES and samples.dtype == np.int16 for samples, _ in got)
    assert decoder.add(rtp(11, (base + FRAME_SAMPLES) & 0xFFFFFFFF, packets[1]))[1] is None  # duplicate
    assert len(got) == 4 and decoder.duplicates == 1 and decoder.decoded == 4


def test_non_opus_audio_goes_to_aiortc_and_a_bad_packet_counts_as_lost():
    got = []
    decoder = DirectDecoder(_Receiver(), lambda samples, pts: got.append(pts))
    _, frame = decoder.add(rtp(1, 160, b"\xff" * 160, payload_type=0))
    assert frame is not None and frame.data == b"\xff" * 160 and got == []
    _, frame = decoder.add(rtp(2, 960, b"\xff", payload_type=111))  # not a valid Opus packet
    assert frame is None and got == [] and decoder.errors == 1
    _, frame = decoder.add(rtp(3, 1920, b"", payload_type=111))  # no payload: nothing to play
    assert frame is None and got == [] and decoder.decoded == 0


async def test_install_decoder_takes_the_jitter_buffer_slot():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # never the default public STUN
    try:
        receiver = pc.addTransceiver("audio").receiver
        decoder = install_decoder(receiver, lambda samples, pts: None)
        assert isinstance(decoder, DirectDecoder)
        assert aiortc_shim.jitter_buffer(receiver) is decoder
    finally:
        await pc.close()
    assert install_decoder(object(), lambda samples, pts: None) is None
