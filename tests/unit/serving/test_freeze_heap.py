"""The model server takes the loaded versions out of the garbage collector's generations."""

from __future__ import annotations

import gc
import weakref

from serving.server import freeze_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_loaded_objects_are_frozen_and_a_swapped_out_version_is_still_collected() -> None:
    try:
        loaded = _Node()
        freeze_heap()
        assert gc.get_freeze_count() > 0
        assert not any(o is loaded for o in gc.get_objects())  # outside every generation
        alive = weakref.ref(loaded)
        del loaded  # the version swapped out: its cycle is garbage, but frozen
        gc.collect()
        assert alive() is not None  # a collection does not see frozen objects
        freeze_heap()  # the next swap unfreezes first
        assert alive() is None
    finally:
        gc.unfreeze()
