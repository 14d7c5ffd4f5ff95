"""Maintenance that removes rows does it in bounded batches: short statements, few row locks at a time."""

from __future__ import annotations

from collections.abc import Callable


def in_batches(batch: Callable[[int], int], size: int, most: int) -> int:
    """Calls `batch(size)` (which returns how many rows it handled) until one handles fewer than `size`, at
    most `most` times, so one run cannot monopolise the database; returns the rows handled in all."""
    done = 0
    for _ in range(most):
        handled = batch(size)
        done += handled
        if handled < size:
            break
    return done
