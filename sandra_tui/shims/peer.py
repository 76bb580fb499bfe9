"""Closing an aiortc peer connection so that nothing of it keeps running.

aiortc 1.16's `RTCPeerConnection.close()` stops the senders and receivers first and the
transports after. If the connect task (started by setRemoteDescription) is inside
`dtlsTransport.start()` at that moment and DTLS completes, it then starts the sender and the
receiver, whose RTCP loops run after the close, for as long as the process lives (seen in
tests/call/test_lifecycle.py: a hang-up 40 ms into a call, one in ~100 runs under load, left
`RTCRtpSender._run_rtcp` and `RTCRtpReceiver._run_rtcp` pending). Stopping them again after the
close, through their public `stop()`, ends those loops; on a normal close it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib


async def close_peer_connection(pc) -> None:
    with contextlib.suppress(Exception):
        await pc.close()
    await asyncio.sleep(0)  # a connect task that was about to start them gets to run first
    for transceiver in pc.getTransceivers():
        for part in (transceiver.sender, transceiver.receiver):
            with contextlib.suppress(Exception):
                await part.stop()
