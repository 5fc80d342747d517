"""Bounded single-consumer channels that never block the producer: when full, the oldest item is
dropped and counted (telegraf/frigate style back-pressure)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ChannelClosed(Exception):
    """The channel was closed and has been drained."""


class DropOldestChannel(Generic[T]):
    """An asyncio channel of fixed capacity. ``put`` never waits; ``on_drop`` hears of each dropped item."""

    def __init__(
        self,
        capacity: int,
        name: str,
        on_drop: Callable[[T], None] | None = None,
        pinned: Callable[[T], bool] | None = None,
    ):
        if capacity < 1:
            raise ValueError(f"channel {name!r}: capacity must be at least 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self._items: collections.deque[T] = collections.deque()
        self._ready = asyncio.Event()
        self._on_drop = on_drop
        self._pinned = pinned  # items never dropped (rare control items such as a device declaration)
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> None:
        if self._closed:
            raise ChannelClosed(f"channel {self.name!r} is closed")
        if len(self._items) >= self.capacity:
            self._drop_oldest()
        self._items.append(item)
        self.put_count += 1
        self._ready.set()

    def _drop_oldest(self) -> None:
        index = 0
        if self._pinned is not None:
            while index < len(self._items) and self._pinned(self._items[index]):
                index += 1
            if index == len(self._items):
                return  # only pinned items: hold one more rather than lose a declaration
        oldest = self._items[index]
        del self._items[index]
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(oldest)

    def close(self) -> None:
        """No more puts; ``get`` drains what is left, then raises ChannelClosed."""
        self._closed = True
        self._ready.set()

    async def get_many(self, max_items: int) -> list[T]:
        """Wait for at least one item, then take up to ``max_items`` of them, oldest first."""
        while not self._items:
            if self._closed:
                raise ChannelClosed(f"channel {self.name!r} is closed")
            self._ready.clear()
            await self._ready.wait()
        count = min(max_items, len(self._items))
        return [self._items.popleft() for _ in range(count)]

    async def get(self) -> T:
        return (await self.get_many(1))[0]
