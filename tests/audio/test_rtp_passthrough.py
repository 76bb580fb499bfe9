"""The aiortc jitter-buffer bypass: still fits the pinned aiortc, keeps timestamps right when
packets come out of order or wrap, and drops duplicates."""

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtp import RtpPacket

from sandra_tui.media import rtp_passthrough
from sandra_tui.shims import aiortc as aiortc_shim
from sandra_tui.media.rtp_passthrough import PassThroughJitterBuffer, ReorderSafeMapper


def packet(seq: int, ts: int) -> RtpPacket:
    p = RtpPacket(payload_type=111, sequence_number=seq, timestamp=ts)
    aiortc_shim.set_packet_payload(p, b"opus")
    return p


async def test_install_fits_the_pinned_aiortc_receiver():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # never the default public STUN
    try:
        transceiver = pc.addTransceiver("audio", direction="recvonly")
        assert rtp_passthrough.install(transceiver.receiver) is True
        assert isinstance(aiortc_shim.jitter_buffer(transceiver.receiver), PassThroughJitterBuffer)
    finally:
        await pc.close()


def test_install_refuses_an_unknown_receiver():
    assert rtp_passthrough.install(object()) is False


def test_every_packet_is_a_frame_at_once_and_duplicates_are_dropped():
    jb = PassThroughJitterBuffer()
    frames = [jb.add(packet(s, s * 960))[1] for s in (10, 12, 11, 11, 13)]
    assert [f.timestamp // 960 if f else None for f in frames] == [10, 12, 11, None, 13]
    assert jb.duplicates == 1


def test_sequence_wrap_is_not_a_duplicate():
    jb = PassThroughJitterBuffer()
    for i in range(200):
        assert jb.add(packet((65500 + i) % 65536, i * 960))[1] is not None


def test_mapper_handles_reordering_and_32_bit_wrap():
    m = ReorderSafeMapper()
    base = 2**32 - 960 * 2
    assert m.map(base) == 0
    assert m.map((base + 1920) % 2**32) == 1920  # wrapped
    assert m.map(base + 960) == 960  # late, before the wrap: not a wrap
    assert m.map((base + 2880) % 2**32) == 2880
