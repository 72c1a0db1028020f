"""Threads of the native libraries: how many irspack's C++ parts use, and single-threaded BLAS
for the top-N blocks and the tuning trials."""

from __future__ import annotations

import os
import threading
from typing import Any

from .errors import ValidationError


def default_n_threads() -> int:
    """Threads for irspack's C++ parts: ``WORKBENCH_N_THREADS``, else ``IRSPACK_NUM_THREADS_DEFAULT``,
    else the CPU count."""
    for var in ("WORKBENCH_N_THREADS", "IRSPACK_NUM_THREADS_DEFAULT"):
        value = os.environ.get(var)
        if value:
            try:
                n = int(value)
            except ValueError:
                raise ValidationError(f"{var}={value!r} is not an integer number of threads") from None
            if n >= 1:
                return n
    return max(1, os.cpu_count() or 1)


class single_threaded_blas:
    """BLAS (numpy's and scipy's OpenBLAS) on one thread inside the block. For the small products
    of a top-N block or a tuning trial, OpenBLAS's threads spin waiting for each other: about 5x
    the CPU time, and more wall time when other processes want the cores. Process-wide, so
    reference-counted: overlapping uses restore the original limits only when the last one ends.
    """

    _lock = threading.Lock()
    _users = 0
    _controller: Any = None
    _limiter: Any = None

    def __enter__(self) -> None:
        cls = type(self)
        with cls._lock:
            cls._users += 1
            if cls._users == 1:
                try:
                    if cls._controller is None:
                        from threadpoolctl import ThreadpoolController
                        cls._controller = ThreadpoolController()
                    cls._limiter = cls._controller.limit(limits=1, user_api="blas")
                except Exception:  # noqa: BLE001 -- threadpoolctl missing or failing: just slower
                    cls._limiter = None

    def __exit__(self, *exc: Any) -> None:
        cls = type(self)
        with cls._lock:
            cls._users -= 1
            if cls._users == 0 and cls._limiter is not None:
                cls._limiter.restore_original_limits()
                cls._limiter = None
