"""aiortc internals, used here only (tests/shims/test_aiortc_contract.py checks them).

The audio receive path puts our own object in `RTCRtpReceiver`'s jitter-buffer slot (to hand
every packet to the decoder at once, see media/rtp_passthrough.py) and its timestamp mapper
(one that survives reordering). Both slots are name-mangled privates; so is the payload-type ->
codec table, and the depayloaded payload aiortc leaves on the packet (`packet._data`). A rename
in aiortc would otherwise silently send decoding back to aiortc's thread: the contract test
fails first, naming the version.
"""

from __future__ import annotations

import aiortc

JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
TIMESTAMP_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
CODECS = "_RTCRtpReceiver__codecs"
WRITTEN_FOR = "1.16.0"  # the version these names were read from (pyproject pins it)


def version() -> str:
    return aiortc.__version__


def fits(receiver) -> bool:
    """The receiver has the slots `set_receive_path` replaces."""
    return hasattr(receiver, JITTER_BUFFER) and hasattr(receiver, TIMESTAMP_MAPPER)


def set_receive_path(receiver, jitter_buffer, timestamp_mapper) -> bool:
    """Replace the receiver's jitter buffer and timestamp mapper; False if they are not there."""
    if not fits(receiver):
        return False
    setattr(receiver, JITTER_BUFFER, jitter_buffer)
    setattr(receiver, TIMESTAMP_MAPPER, timestamp_mapper)
    return True


def jitter_buffer(receiver):
    return getattr(receiver, JITTER_BUFFER, None)


def receiver_codec(receiver, payload_type: int):
    """The negotiated RTCRtpCodecParameters for a payload type, or None."""
    return getattr(receiver, CODECS, {}).get(payload_type)


def packet_payload(packet) -> bytes:
    """The depayloaded bytes aiortc stores on an RtpPacket before its jitter buffer sees it."""
    return packet._data


def set_packet_payload(packet, data: bytes) -> None:
    """For tests that feed packets to a jitter buffer without aiortc's receive loop."""
    packet._data = data


def ice_connection(ice_transport):
    """The aioice Connection under an RTCIceTransport (or its RTCIceGatherer), or None."""
    return getattr(ice_transport, "_connection", None)


def negotiated_codecs(transceiver) -> list:
    """The transceiver's negotiated RTCRtpCodecParameters, preferred first (aiortc keeps them
    private; getStats() has no codec entries)."""
    return list(getattr(transceiver, "_codecs", None) or [])


def sctp_unacknowledged(sctp) -> bool:
    """Data the SCTP transport has queued or sent but the peer has not acknowledged yet
    (RTCDataChannel.bufferedAmount counts only what is not handed to SCTP)."""
    return bool(sctp._outbound_queue or sctp._sent_queue)
