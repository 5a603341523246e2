"""A sans-I/O batcher: collects items and says when a batch is full by count, bytes or age.

The caller passes ``now`` (seconds, any monotonic origin) and the size of every item; the
batcher never reads a clock or does I/O (house style principle 1). A batch is cut *before* an
item that would push it over ``max_bytes`` or ``max_count``, so no batch exceeds a limit unless a
single item is larger than ``max_bytes`` on its own (it then travels alone; callers that cannot
send such an item filter it out first). An item arriving ``max_age`` or more after the batch's
first item also starts a new batch, so when ``now`` is the items' own timestamp, no batch spans
``max_age`` or more (CloudWatch's 24-hour rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Batcher(Generic[T]):
    """Accumulate items; ``add`` and ``poll`` return the batches that are ready."""

    max_count: int
    max_bytes: int
    max_age: float
    _items: list[T] = field(default_factory=list)
    _bytes: int = 0
    _started: float | None = None

    def __post_init__(self) -> None:
        if self.max_count < 1 or self.max_bytes < 1 or self.max_age < 0:
            raise ValueError("max_count and max_bytes must be >= 1, max_age >= 0")

    @property
    def pending(self) -> int:
        """How many items are held."""
        return len(self._items)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def add(self, item: T, size: int, now: float) -> list[list[T]]:
        """Add one item of ``size`` bytes; return the batches this completed (0, 1 or 2)."""
        out: list[list[T]] = []
        if self._items and (self._bytes + size > self.max_bytes
                            or len(self._items) + 1 > self.max_count
                            or (self._started is not None
                                and now - self._started >= self.max_age)):
            out.append(self._cut())
        if not self._items:
            self._started = now
        self._items.append(item)
        self._bytes += size
        if self._bytes >= self.max_bytes or len(self._items) >= self.max_count:
            out.append(self._cut())
        return out

    def poll(self, now: float) -> list[T] | None:
        """The held batch if its first item is ``max_age`` old at ``now``, else None."""
        if self._items and self._started is not None and now - self._started >= self.max_age:
            return self._cut()
        return None

    def deadline(self) -> float | None:
        """When ``poll`` will next return a batch (None when empty)."""
        return None if self._started is None else self._started + self.max_age

    def drain(self) -> list[T]:
        """Everything held, as one batch (may be empty)."""
        return self._cut()

    def _cut(self) -> list[T]:
        items, self._items, self._bytes, self._started = self._items, [], 0, None
        return items
