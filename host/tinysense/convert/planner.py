"""Activation arena planning: greedy by size, reusing memory of dead tensors (as tflite-micro)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Buffer:
    key: int          # storage group id (a tensor index)
    size: int         # bytes
    first: int        # first op index that needs it (inclusive)
    last: int         # last op index that needs it (inclusive)
    offset: int = -1


def _align(n: int, a: int = 4) -> int:
    return (n + a - 1) & ~(a - 1)


def plan(buffers: list[Buffer], align: int = 4) -> int:
    """Place every buffer at the lowest offset that does not overlap a live one; return size.

    Like tflite-micro's GreedyMemoryPlanner: largest first, then by first use; each buffer goes
    into the first gap (in offset order) among already placed buffers whose lifetimes overlap.
    """
    order = sorted(buffers, key=lambda b: (-b.size, b.first, b.key))
    placed: list[Buffer] = []
    for b in order:
        live = sorted((p for p in placed if p.first <= b.last and b.first <= p.last),
                      key=lambda p: p.offset)
        off = 0
        for p in live:
            if off + b.size <= p.offset:
                break
            off = max(off, _align(p.offset + p.size, align))
        b.offset = off
        placed.append(b)
    return max((_align(b.offset + b.size, align) for b in buffers), default=0)


def check(buffers: list[Buffer]) -> None:
    """Assert no two buffers with overlapping lifetimes overlap in memory (for tests)."""
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.first <= b.last and b.first <= a.last and a.size and b.size:
                if a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                    raise AssertionError(f"buffers {a.key} and {b.key} overlap")
