"""Thread limits of the native libraries, shared by the top-N blocks and the tuning trials."""

from __future__ import annotations

import threading
from typing import Any


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
