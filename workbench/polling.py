"""The one way the workbench waits for something another process does: poll until it is there."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class StillWaiting(TimeoutError):
    """The condition did not hold within the time allowed."""


def poll_until(check: Callable[[], T], timeout: float | None, interval: float = 0.2) -> T:
    """Call `check()` every `interval` seconds until it returns something truthy, and return that.

    StillWaiting after `timeout` seconds (None: wait as long as it takes). `check` is called at
    least once, and once more at the deadline, so a zero timeout means "try once".
    """
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    while True:
        value = check()
        if value:
            return value
        if deadline is not None and time.monotonic() >= deadline:
            raise StillWaiting(f"still waiting after {timeout:g} s")
        time.sleep(interval if deadline is None else max(min(interval, deadline - time.monotonic()), 0.0))
