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


async def test_a_live_call_exposes_what_the_media_path_line_and_the_agent_read():
    """Two real peers on loopback: the ICE connection under the transport and its nominated
    pair, the negotiated codecs, and the SCTP queues."""
    import asyncio

    from aioice.ice import CandidatePair, Connection

    from sandra_tui.shims import aioice as aioice_shim
    from sandra_tui.shims.peer import close_peer_connection

    who = f"{WHO}, aioice {aioice_shim.version()}"
    a, b = (RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2))
    try:
        dc = a.createDataChannel("x")
        opened = asyncio.get_running_loop().create_future()
        dc.on("open", lambda: opened.done() or opened.set_result(True))
        a.addTransceiver("audio", direction="sendrecv")
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        await asyncio.wait_for(opened, 10)  # loopback ICE+DTLS+SCTP: seconds even under load
        transceiver = a.getTransceivers()[0]
        connection = shim.ice_connection(transceiver.receiver.transport.transport)
        assert isinstance(connection, Connection), f"{who}: RTCIceTransport._connection is not an aioice Connection"
        assert isinstance(aioice_shim.nominated_pair(connection), CandidatePair), f"{who}: Connection._nominated moved"
        assert aioice_shim.stun_protocols(connection), f"{who}: Connection._protocols is empty or gone"
        codecs = shim.negotiated_codecs(transceiver)
        assert codecs and codecs[0].mimeType.lower() == "audio/opus", f"{who}: RTCRtpTransceiver._codecs: {codecs}"
        sctp = dc.transport
        dc.send("hello")
        for _ in range(200):  # until b acknowledged it; each step is one loop turn, not a time bound
            if not shim.sctp_unacknowledged(sctp):
                break
            await asyncio.sleep(0.01)
        assert not shim.sctp_unacknowledged(sctp), f"{who}: the SCTP queues never emptied"
    finally:
        await close_peer_connection(a)
        await close_peer_connection(b)
