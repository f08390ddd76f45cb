"""A small least-recently-used cache for per-input-shape state (compiled models, sessions).

A folder of images of many sizes, or tiles of several shapes, would otherwise keep one
compiled model (and its buffers) per shape for the whole run. Used for OpenVINO's compiled
shapes and for CUDA graphs.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """At most ``capacity`` entries; the least recently used one is evicted (``on_evict(value)``)
    *before* a new one is created, so the two never hold memory at once (and a device can
    finish with a CUDA graph before the next capture takes its place in the shared pool)."""

    def __init__(self, capacity: int, on_evict: Callable[[V], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("an LRU cache needs room for one entry")
        self.capacity = capacity
        self.on_evict = on_evict
        self._items: OrderedDict[K, V] = OrderedDict()
        self.evictions = 0

    def get_or_create(self, key: K, create: Callable[[], V]) -> V:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        while len(self._items) >= self.capacity:
            _, old = self._items.popitem(last=False)
            self.evictions += 1
            if self.on_evict is not None:
                self.on_evict(old)
        value = self._items[key] = create()
        return value

    def keys(self) -> list[K]:
        """Least recently used first."""
        return list(self._items)

    def values(self) -> list[V]:
        return list(self._items.values())

    def clear(self) -> None:
        self._items.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
