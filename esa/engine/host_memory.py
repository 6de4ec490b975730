"""Host memory that freed tensors leave behind.

glibc's malloc serves blocks below its mmap threshold from the heap and keeps them there when freed; each time a
larger, mmap-served block is freed it raises the threshold (up to 32 MiB on 64-bit). After the first few
microbatches of a scoring pass nearly every activation and gradient therefore comes from the heap, and the holes
they leave keep counting in the process's RSS. Pinning the threshold at glibc's own starting value (128 KiB) sends
every larger block to mmap, which returns it at once when freed, and costs page faults on every new block:
on a 36M-parameter Llama the pass peaked 0.4x the model lower (3.46x instead of 3.87x) and took 1.7x as long
(benchmarks/host_memory.py), so the score stage pins it only when RAM is tight.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
FIXED_THRESHOLD = 128 * 1024  # glibc's initial value: only its upward drift is switched off


def return_freed_blocks(threshold: int = FIXED_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold for the rest of the process; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))
