"""Cap glibc's malloc arenas for a long-running, multi-threaded job.

glibc gives each thread that allocates concurrently its own arena (up to 8 per core), and memory freed in
one arena is not reused by the others: a job whose frame loop, source reader, chat worker and request
threads all allocate NumPy frames and model buffers keeps one partly-used heap per thread. On the
built-in job with the chat server that is about 100 MiB of peak RSS more with the default than with two
arenas (``tests/test_memory.py`` holds the peak under the start-up estimate). ``mallopt(M_ARENA_MAX)``
sets the cap for arenas created afterwards, so it is called once at the start of the long-running
commands, before their threads exist; the ``MALLOC_ARENA_MAX`` environment variable, when set, wins.
Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

__all__ = ["limit_malloc_arenas", "ARENAS"]

log = logging.getLogger(__name__)

ARENAS = 2
_M_ARENA_MAX = -8  # glibc malloc.h


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc malloc arenas at ``arenas``; True when the cap was set."""
    if os.environ.get("MALLOC_ARENA_MAX") or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = bool(mallopt(_M_ARENA_MAX, int(arenas)))
    log.debug("malloc arenas capped at %d: %s", arenas, done)
    return done
