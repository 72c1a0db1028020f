"""Which allocator Arrow uses in a workbench process.

Arrow's default pool (mimalloc in the pyarrow wheels) hands freed memory back to the system within
about a second and faults it in again on the next large allocation: an import spends its system
time zeroing pages. The system allocator keeps freed memory for reuse. Measured on the pipeline's
synthetic CSVs, each import in a fresh process: `bench/bench_scale.py`'s 10M rows 1.35 s and 740 MB
peak instead of 2.0 s and 900 MB, its 100M rows 24.7 s and 5.0 GB instead of 28.4 s and 5.7 GB;
`bench/bench_import.py`'s 10M rows with times 2.0 s instead of 2.9 s (peak within 5%). Setting
ARROW_DEFAULT_MEMORY_POOL (mimalloc, jemalloc, system) still decides.
"""

from __future__ import annotations

import os

import pyarrow as pa

POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def use_system_allocator() -> None:
    """Make the system allocator Arrow's default pool, unless ARROW_DEFAULT_MEMORY_POOL chooses one."""
    if not os.environ.get(POOL_VARIABLE):
        pa.set_memory_pool(pa.system_memory_pool())
