"""Give the C heap's free memory back to the system now and then, in a live run that lasts for hours.

glibc keeps memory that Python, numpy and torch have freed inside its arenas (one per thread that
allocated) for reuse, and returns it only from the top of a heap. A live engine frees and re-allocates
megabytes every second on several threads (the generator's cache snapshots, decoded frames, analysis
buffers); freed chunks pinned below a live one stay resident, so RSS creeps up over an hour although
nothing is kept (a 15-minute run: +1.2 MB of Python objects, while malloc_trim gave back over 100 MB).
malloc_trim(0) releases every free page of every arena (madvise), so resident memory follows what is used.
Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from typing import Callable


def _libc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl and macOS have no malloc_trim
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _libc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where that is not possible (not glibc)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


async def release_every(seconds: float) -> None:
    """Release the heap's free memory every `seconds` (off the loop: a trim walks every arena), until cancelled."""
    if seconds <= 0 or _TRIM is None:
        return
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(seconds)
        await loop.run_in_executor(None, release_free_memory)
