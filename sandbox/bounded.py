"""A size-capped, insertion-ordered mapping: the stand-in keeps recent state, not all of it.

The run command's traffic generator never stops, so every store of the in-memory stand-in is
capped: past the limit the oldest entries are forgotten (an API call naming one then gets the
gateway's "no such object" answer), which keeps a day-long demo at a steady memory footprint.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedStore(OrderedDict[K, V]):
    def __init__(self, limit: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        super().__init__()
        self.limit = limit
        self.on_evict = on_evict

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            old_key, old_value = self.popitem(last=False)
            if self.on_evict is not None:
                self.on_evict(old_key, old_value)
