"""In-process publish/subscribe between the contact store and live sockets.

Topics: `contact:<id>` (messages and state of one contact), `user:<id>` (offers and
presence for one agent), `tenant:<id>`. Subscribers get an asyncio.Queue; a slow
subscriber whose queue is full loses events rather than blocking the publisher,
which is safe because every socket re-reads from MongoDB on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

Event = dict[str, Any]


class EventBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._queue_size = queue_size

    def publish(self, topic: str, event: Event) -> None:
        for queue in list(self._subscribers.get(topic, ())):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    def new_queue(self) -> asyncio.Queue[Event]:
        return asyncio.Queue(self._queue_size)

    def add(self, topic: str, queue: asyncio.Queue[Event]) -> None:
        self._subscribers[topic].add(queue)

    def remove(self, topic: str, queue: asyncio.Queue[Event]) -> None:
        subscribers = self._subscribers.get(topic)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[topic]

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[asyncio.Queue[Event]]:
        queue = self.new_queue()
        for topic in topics:
            self.add(topic, queue)
        try:
            yield queue
        finally:
            for topic in topics:
                self.remove(topic, queue)
