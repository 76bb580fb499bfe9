"""Keeping Python's cyclic garbage collector out of the call's way.

A full collection walks every tracked object with the GIL held. Once the TUI is up that is
over 100,000 objects (modules, widgets, styles, aiortc), and on a slow 2-core machine the
walk took 90-100 ms: no packet is read or decoded meanwhile, so the 40 ms playout buffer runs
dry and the operator hears a gap (measured: each such gap was a playout underrun).

Almost all of those objects live as long as the process. `gc.freeze()` moves them out of the
collector's sight, so later full collections only walk what the call itself creates.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect once (so no garbage is kept forever), then freeze what is left. Call it when
    start-up is done and before the call's audio starts."""
    gc.collect()
    gc.freeze()
