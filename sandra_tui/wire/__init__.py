"""The wire protocol shared by the client and `sandra-tui serve`: Realtime and Live event shapes,
paths, ids (no Textual, no audio)."""
