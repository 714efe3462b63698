"""Keep glibc's malloc from hoarding the memory a worker frees.

Measured over a 16-minute soak (BENCHMARKS.md): the worker's live allocations stayed at about
40 MiB (the objects the garbage collector tracks did not grow either), while glibc's arenas grew
from 42 to 65 MiB, all of it free chunks it kept -- the worker's RSS rose 25 % before levelling
off. glibc serves large blocks (Kafka fetch responses, batches of records) with mmap and returns
them on free, but every such free raises its mmap threshold to the block's size (up to 32 MiB),
so later large blocks come from the heap instead, where blocks of varying sizes fragment it.
Fixing the threshold turns that adjustment off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin malloc's mmap threshold (glibc only; elsewhere a no-op). True if it was set."""
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is None:  # not glibc (musl, macOS): nothing to pin
        return False
    if not mallopt(M_MMAP_THRESHOLD, threshold):
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) refused; RSS may creep up with heap fragmentation", threshold)
        return False
    return True
