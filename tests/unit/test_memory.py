"""The worker pins glibc's mmap threshold so large freed blocks go back to the OS instead of
fragmenting the heap (agents.memory). Each case runs in a fresh interpreter: the setting is
process-wide and cannot be undone."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import ctypes, ctypes.util, sys
from agents.memory import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "pinned":
    assert fix_mmap_threshold()
mapped = []
for _ in range(3):  # 1 MiB, freed, three times
    before = libc.mallinfo2().hblks
    block = libc.malloc(1 << 20)
    mapped.append(libc.mallinfo2().hblks - before)
    libc.free(block)
print(mapped)
"""


def mmapped_allocations(mode: str) -> str:
    return subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parents[2]).stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_large_block_is_mmapped_every_time_once_the_threshold_is_pinned() -> None:
    assert mmapped_allocations("default") == "[1, 0, 0]"  # glibc raised its threshold after the first free
    assert mmapped_allocations("pinned") == "[1, 1, 1]"
