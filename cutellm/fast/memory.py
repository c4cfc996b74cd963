"""Keep freed memory for the next training step instead of handing it back to the operating system.

Every training step allocates the same temporary tensors again (activations, gradients, the logits: about 10 MB
for the shipped model) and frees them. glibc's malloc returns memory at the top of its heap to the system once more
than its trim threshold is free there (a few MB, adjusted as it goes), so the next step asks for it again and the
kernel maps and zeroes fresh pages: measured about 2,000 page faults a step, several percent of its time
(bench/README.md, "Speed, round nine"). With a trim threshold of 256 MB and large blocks served from the heap up to
32 MB, a step reuses the memory the last one freed: a handful of faults a step.

Only processes that exist to train call this (the CLI's `train` and `sft`, `bench`, the app's worker processes):
the setting is the whole process's, and the app's server should give memory back after a request. Elsewhere than
Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1   # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 256 * 1024 * 1024
MMAP_THRESHOLD = 32 * 1024 * 1024   # glibc's own ceiling for its adjusted threshold


def keep_freed_memory() -> bool:
    """Raise this process's malloc trim and mmap thresholds (see the module docstring); True when it could."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
