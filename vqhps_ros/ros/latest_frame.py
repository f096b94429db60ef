"""A one-frame mailbox between the subscription callbacks and the inference thread: the newest frame wins.

Callbacks `put` and never wait for inference; the worker `take`s the newest frame, blocking until there is one.
A frame replaced before the worker took it is counted as dropped, so memory stays one frame whatever the camera rate.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

Item = TypeVar("Item")


class LatestFrameSlot(Generic[Item]):
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Item | None = None
        self._closed = False
        self.dropped = 0  # frames replaced before the worker took them
        self.accepted = 0

    def put(self, item: Item) -> None:
        with self._condition:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.accepted += 1
            self._condition.notify()

    def take(self, timeout: float | None = None) -> Item | None:
        """The newest frame, or None when the slot is closed (or `timeout` seconds passed without one)."""
        with self._condition:
            self._condition.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return None if self._closed else item

    def close(self) -> None:
        """Wake the worker for good: `take` returns None from now on."""
        with self._condition:
            self._closed = True
            self._item = None
            self._condition.notify_all()

    def reopen(self) -> None:
        with self._condition:
            self._closed = False
