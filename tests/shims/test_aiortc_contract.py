"""The aiortc internals sandra_tui/shims/aiortc.py relies on. A failure here names the version:
the shim must be revisited before aiortc is upgraded (otherwise decoding silently goes back to
aiortc's thread and its 80 ms jitter buffer)."""

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from sandra_tui.shims import aiortc as shim

WHO = f"aiortc {shim.version()} (the shim was written for {shim.WRITTEN_FOR})"


async def test_an_audio_receiver_has_the_slots_and_the_codec_table():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("audio", direction="recvonly").receiver
        assert isinstance(receiver, RTCRtpReceiver)
        assert shim.fits(receiver), f"{WHO}: RTCRtpReceiver has no {shim.JITTER_BUFFER} / {shim.TIMESTAMP_MAPPER}"
        assert isinstance(shim.jitter_buffer(receiver), JitterBuffer), f"{WHO}: the jitter-buffer slot holds something else"
        mapper = getattr(receiver, shim.TIMESTAMP_MAPPER)
        assert callable(getattr(mapper, "map", None)), f"{WHO}: the timestamp mapper has no map()"
        assert isinstance(getattr(receiver, shim.CODECS, None), dict), f"{WHO}: {shim.CODECS} is not a dict"
        assert shim.receiver_codec(receiver, 111) is None  # nothing negotiated yet

        class Buffer:
            pass

        class Mapper:
            pass

        buffer, mapper = Buffer(), Mapper()
        assert shim.set_receive_path(receiver, buffer, mapper)
        assert shim.jitter_buffer(receiver) is buffer and getattr(receiver, shim.TIMESTAMP_MAPPER) is mapper
    finally:
        await pc.close()


def test_the_receive_loop_uses_the_slots_and_leaves_the_payload_on_the_packet():
    """The names are read by RTCRtpReceiver's packet handler: replacing an attribute that the
    handler no longer reads would change nothing, silently."""
    names = set(RTCRtpReceiver._handle_rtp_packet.__code__.co_names)
    for name in (shim.JITTER_BUFFER, shim.TIMESTAMP_MAPPER, shim.CODECS, "_data", "add", "map"):
        assert name in names, f"{WHO}: RTCRtpReceiver._handle_rtp_packet no longer uses {name}"


def test_packet_payload_round_trips():
    packet = RtpPacket(payload_type=111, sequence_number=1, timestamp=960, payload=b"abc")
    shim.set_packet_payload(packet, b"abc")
    assert shim.packet_payload(packet) == b"abc"


def test_a_receiver_without_the_slots_is_refused():
    assert not shim.set_receive_path(object(), None, None)
    assert shim.jitter_buffer(object()) is None and shim.receiver_codec(object(), 111) is None
