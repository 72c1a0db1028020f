"""Process-wide memory settings the workbench changes while it works on large data, each restored
once the last of concurrent blocks using it leaves; an environment variable set by the user decides
instead.

- `system_allocator()`: Arrow allocates through the system allocator while importing. Arrow's
  default pool (mimalloc in the pyarrow wheels) hands freed memory back to the system within about a
  second and faults it in again on the next large allocation: an import spent its system time
  zeroing pages. Measured on the pipeline's synthetic CSVs, each import in a fresh process:
  `bench/bench_scale.py`'s 10M rows 1.35 s and 740 MB peak instead of 2.0 s and 900 MB, its 100M
  rows 24.7 s and 5.0 GB instead of 28.4 s and 5.7 GB; `bench/bench_import.py`'s 10M rows with times
  2.0 s instead of 2.9 s. Only imports: training reads a snapshot no faster with it, and peaks
  higher (10M rows: 960 MB against 860 MB). ARROW_DEFAULT_MEMORY_POOL decides instead.
- `without_numpy_hugepages()`: NumPy gives no huge-page advice while the workbench builds a training
  matrix and trains. NumPy advises Linux to back every array of 4 MiB or more with transparent huge pages
  (madvise MADV_HUGEPAGE). Where the kernel's THP defrag setting is `madvise` or `defer+madvise` (a
  common default) and no free huge page is at hand, a page fault in such memory waits while the
  kernel compacts memory, and the advice stays on heap memory that later serves other allocations
  (numpy/numpy#31590). Measured with that setting (the same CSVs, fresh processes, with and without
  the advice, alternating): training IALS on 100M interactions 162 s instead of 185 s (193 s instead
  of 230 s in a second pair), the snapshot -> CSR alone 3.5-4.8 s instead of 7.2-8.2 s; 10M
  interactions 12.8 s instead of 13.9 s (medians of 3); 1M no different. NUMPY_MADVISE_HUGEPAGE
  decides instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
ADVICE_VARIABLE = "NUMPY_MADVISE_HUGEPAGE"


class ScopedSetting:
    """A process-wide setting: `swap()` changes it and returns what to give `restore()` afterwards.

    Calling the instance gives a context manager (also a decorator) that swaps on the first of
    concurrent users (any threads) and restores after the last; with `variable` set in the
    environment, or `swap` None (nothing to change here), it changes nothing.
    """

    def __init__(self, variable: str, swap: Callable[[], Any] | None, restore: Callable[[Any], None]) -> None:
        self.variable, self._swap, self._restore = variable, swap, restore
        self._lock = threading.Lock()
        self._users = 0
        self._previous: Any = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self._swap is None or os.environ.get(self.variable):
            yield
            return
        with self._lock:
            if self._users == 0:
                self._previous = self._swap()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._restore(self._previous)
                    self._previous = None


def _to_system_pool() -> pa.MemoryPool:
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    return previous


# numpy's private setter (what its own start-up calls with NUMPY_MADVISE_HUGEPAGE); absent: no advice to turn off
_set_hugepage_advice = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)

system_allocator = ScopedSetting(POOL_VARIABLE, _to_system_pool, pa.set_memory_pool)
"""Arrow's default pool is the system allocator inside. Buffers remember the pool they came from,
so they may outlive the block."""

without_numpy_hugepages = ScopedSetting(
    ADVICE_VARIABLE, None if _set_hugepage_advice is None else (lambda: _set_hugepage_advice(False)),
    lambda previous: _set_hugepage_advice(bool(previous)))
"""NumPy gives no huge-page advice for arrays allocated inside; arrays keep the memory they have."""
