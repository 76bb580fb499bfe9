"""Start-up objects are frozen out of the collector's walks (sandra_tui/heap.py)."""

import gc

from sandra_tui.heap import freeze_long_lived


def test_freezing_leaves_full_collections_only_the_new_objects():
    gc.unfreeze()
    try:
        tracked = len(gc.get_objects())
        freeze_long_lived()
        assert gc.get_freeze_count() >= tracked // 2
        assert len(gc.get_objects()) < tracked // 10  # what a full collection still walks
        garbage = []
        garbage.append(garbage)  # a cycle made after the freeze is still collected
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
