"""The media path shared by the client and `sandra-tui serve`: the audio format, mono Opus on the
loop, aiortc's jitter buffer bypassed, frame pacing, loopback hosts (no Textual, no devices)."""
