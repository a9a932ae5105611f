"""Edit distance, only as far as keyword matching needs it: is it at most one?"""

from __future__ import annotations


def within_one_edit(a: str, b: str) -> bool:
    """True when `b` is `a` with at most one letter inserted, deleted, replaced or swapped."""
    if a == b:
        return True
    size_a, size_b = len(a), len(b)
    if abs(size_a - size_b) > 1:
        return False
    i = 0
    shorter = min(size_a, size_b)
    while i < shorter and a[i] == b[i]:
        i += 1
    if size_a > size_b:
        return a[i + 1:] == b[i:]
    if size_a < size_b:
        return a[i:] == b[i + 1:]
    # A swap of neighbours is one slip of the thumb, not two.
    if a[i + 1:] == b[i + 1:]:
        return True
    return i + 1 < size_a and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:]
