"""Deadlines of many contexts, earliest first, for a protocol's one timer.

A protocol with deadlines (REQ resends, survey deadlines) reports the
earliest of all its contexts' deadlines through ``next_deadline()``, which
its host calls after every input, and handles the due ones in
``on_timer(now)``.  :class:`Deadlines` keeps them so that both are cheap with
thousands of contexts: one binary heap of ``(when, serial, context)``.

Rules:

* A context has at most one deadline; :meth:`Deadlines.set` replaces it and
  :meth:`Deadlines.clear` removes it, both without searching the heap: the
  old entry stays behind, stale (its serial no longer matches), and is
  skipped when it comes to the top.
* :meth:`Deadlines.next` is exact (stale entries on top are popped first);
  :meth:`Deadlines.pop_due` hands out the due contexts one at a time, in
  deadline order (ties in the order they were set), so handling one may
  set or clear others.
* Stale entries never outnumber live ones by much: when the heap holds more
  than twice as many entries as there are deadlines (and more than
  :data:`_COMPACT_MIN`), it is rebuilt from the live ones.

The clock is the host's: ``when`` and ``now`` are whatever it handed in.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Generic, TypeVar

__all__ = ["Deadlines"]

K = TypeVar("K")

#: Heap sizes below this are never compacted (rebuilding would cost more).
_COMPACT_MIN = 64


class Deadlines(Generic[K]):
    """At most one deadline per key (a context), earliest first."""

    __slots__ = ("_at", "_heap", "_serial")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        #: The live deadline of each key and the serial of its heap entry.
        self._at: dict[K, tuple[float, int]] = {}
        self._serial = 0

    def __len__(self) -> int:
        return len(self._at)

    def get(self, key: K) -> float | None:
        """The deadline of ``key``, or None."""
        entry = self._at.get(key)
        return None if entry is None else entry[0]

    def set(self, key: K, when: float) -> None:
        """Give ``key`` the deadline ``when``, replacing the one it had."""
        self._serial = serial = self._serial + 1
        self._at[key] = (when, serial)
        heap = self._heap
        heappush(heap, (when, serial, key))
        if len(heap) > _COMPACT_MIN and len(heap) > 2 * len(self._at):
            self._heap = [(w, s, k) for k, (w, s) in self._at.items()]
            heapify(self._heap)

    def clear(self, key: K) -> None:
        """Remove the deadline of ``key``, if it has one."""
        self._at.pop(key, None)

    def next(self) -> float | None:
        """The earliest deadline, or None."""
        heap = self._heap
        at = self._at
        while heap:
            when, serial, key = heap[0]
            live = at.get(key)
            if live is not None and live[1] == serial:
                return when
            heappop(heap)
        return None

    def pop_due(self, now: float) -> K | None:
        """Remove and return the key with the earliest deadline at or before ``now``."""
        heap = self._heap
        at = self._at
        while heap and heap[0][0] <= now:
            _, serial, key = heappop(heap)
            live = at.get(key)
            if live is not None and live[1] == serial:
                del at[key]
                return key
        return None
