"""Which allocator Arrow uses while the workbench imports data.

Arrow's default pool (mimalloc in the pyarrow wheels) hands freed memory back to the system within
about a second and faults it in again on the next large allocation: an import spends its system
time zeroing pages. The system allocator keeps freed memory for reuse, so imports use it. Measured
on the pipeline's synthetic CSVs, each import in a fresh process: `bench/bench_scale.py`'s 10M rows
1.35 s and 740 MB peak instead of 2.0 s and 900 MB, its 100M rows 24.7 s and 5.0 GB instead of
28.4 s and 5.7 GB; `bench/bench_import.py`'s 10M rows with times 2.0 s instead of 2.9 s. Only
imports: training reads a snapshot no faster with it, and peaks higher (10M rows: 960 MB against
860 MB). Setting ARROW_DEFAULT_MEMORY_POOL (mimalloc, jemalloc, system) still decides.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
_lock = threading.Lock()
_users = 0  # imports running now (in any thread)
_previous: pa.MemoryPool | None = None


@contextmanager
def system_allocator() -> Iterator[None]:
    """Arrow's default pool is the system allocator inside (unless ARROW_DEFAULT_MEMORY_POOL chooses
    one); the previous pool again once the last of concurrent users leaves. Buffers remember the pool
    they came from, so they may outlive the block."""
    global _users, _previous
    if os.environ.get(POOL_VARIABLE):
        yield
        return
    with _lock:
        if _users == 0:
            _previous = pa.default_memory_pool()
            pa.set_memory_pool(pa.system_memory_pool())
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _previous is not None:
                pa.set_memory_pool(_previous)
                _previous = None
