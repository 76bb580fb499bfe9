"""Wire-level pieces shared by the client and `sandra-tui serve` (no Textual, no audio)."""
