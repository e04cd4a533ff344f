"""Large buffers go back to the operating system when freed.

glibc serves an allocation above its mmap threshold with its own mapping, returned on
free, but raises that threshold to the size of each such block freed (up to 32 MiB): after
the first large answer, the next ones come from the heap, and a heap fragmented by
answers held for slow clients does not shrink when they go. Measured here: 40 clients not
reading 2 MB answers left the process 77 MB larger until every one was gone. A fixed
threshold keeps every answer over it in a mapping of its own, unmapped when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger("devreg")

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 64 * 1024


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD`; False where that is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        log.debug("mallopt is not available: large buffers stay in the heap")
        return False
