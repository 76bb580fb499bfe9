"""sandra-tui: a terminal softphone for Sandra, a voice assistant on the OpenAI Realtime API."""

__version__ = "0.1.0"
