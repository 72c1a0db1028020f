"""The dashboards' kernel manager: jupyter_server's, with a cap on live kernels and no kernel left behind.

Every page load takes a kernel (~200 MB). A page that is left posts Voila's shutdown request; a page
whose tab was closed without it, or a request whose client never opened the kernel's websocket (a
script, a link preview, a page that failed to load) leaves a kernel nobody will use again. Those are
shut down by jupyter_server's own culler, run on its own schedule (`cull_interval`):

- a kernel whose browser connected and went away, once idle for `cull_idle_timeout` seconds
  (upstream's rule, with `cull_connected=False`: a page still open keeps its kernel);
- a kernel whose browser never connected, `unconnected_timeout` seconds after it was handed to a page
  (upstream has no rule for it: its idle clock starts when the notebook ran, so it would either live
  forever or be culled while its page is still loading).

Kernels preheated by Voila for the next visitor are neither counted nor culled (Voila's own override of
`cull_kernel_if_idle` skips them). Before a page takes a kernel, `make_room` keeps the kernels serving
pages under `max_kernels`: abandoned ones go first, oldest first; when none can go, the page is a 503.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from jupyter_core.utils import ensure_async
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Integer, default


class DashboardKernelManager(AsyncMappingKernelManager):
    """AsyncMappingKernelManager with a kernel cap and a cull for pages that never connect."""

    max_kernels = Integer(10, config=True, help="Most kernels serving pages at once (preheated ones not counted).")
    unconnected_timeout = Integer(
        120, config=True,
        help="Seconds a kernel handed to a page may wait for the page's websocket before it is shut down.")

    @default("cull_idle_timeout")
    def _default_cull_idle_timeout(self) -> int:
        return 600

    @default("cull_interval")
    def _default_cull_interval(self) -> int:
        return 30

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._connected_once: set[str] = set()
        self._serving_since: dict[str, float] = {}  # first seen outside the preheated pool

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)
        self._connected_once.add(kernel_id)

    def preheated_tasks(self) -> list:
        """Voila's pool entries (tasks giving {"kernel_id", "task", ...}); empty without preheating."""
        return [task for pool in getattr(self, "_pools", {}).values() for task in pool]

    def preheated_kernels(self) -> set[str]:
        return {task.result()["kernel_id"] for task in self.preheated_tasks()
                if task.done() and not task.cancelled() and task.exception() is None}

    def serving_kernels(self) -> list[str]:
        pooled = self.preheated_kernels()
        return [kernel_id for kernel_id in self.list_kernel_ids() if kernel_id not in pooled]

    def _abandoned(self, kernel_id: str, now: float) -> bool:
        """No browser on it: one came and went, or none came within `unconnected_timeout` of the page
        getting it (first seen outside the pool, or done running the notebook, whichever is later)."""
        if self._kernel_connections.get(kernel_id, 0):
            return False
        if kernel_id in self._connected_once:
            return True
        kernel = self._kernels[kernel_id]
        if not kernel.trait_has_value("last_activity") or getattr(kernel, "execution_state", "") == "busy":
            return False  # still starting, or running the notebook for its page
        idle = (datetime.now(UTC) - kernel.last_activity).total_seconds()
        waiting = now - self._serving_since.setdefault(kernel_id, now)
        return min(idle, waiting) > self.unconnected_timeout

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        """Upstream's idle cull once a browser connected; before, `unconnected_timeout` (called outside the pool)."""
        if kernel_id not in self._kernels:  # shut down since the culler listed it
            return
        if kernel_id in self._connected_once:
            await super().cull_kernel_if_idle(kernel_id)
        elif self._abandoned(kernel_id, time.monotonic()):
            self.log.warning("Shutting down kernel %s: its page never connected.", kernel_id)
            await ensure_async(self.shutdown_kernel(kernel_id))

    async def make_room(self) -> None:
        """Room for one more page's kernel, or HTTP 503 when every kernel has a page open."""
        now = time.monotonic()
        serving = self.serving_kernels()
        excess = len(serving) + 1 - self.max_kernels
        if excess <= 0:
            return
        abandoned = sorted((k for k in serving if self._abandoned(k, now)), key=lambda k: self._kernels[k].last_activity)
        for kernel_id in abandoned[:excess]:
            self.log.warning("Shutting down kernel %s: %d pages' kernels is the limit.", kernel_id, self.max_kernels)
            await ensure_async(self.shutdown_kernel(kernel_id))
        if excess > len(abandoned):
            raise web.HTTPError(503, f"{len(serving)} dashboard pages are open, the most this server keeps "
                                     "(workbench serve --max-kernels). Close a dashboard tab, then reload this page.")

    def remove_kernel(self, kernel_id: str):
        self._connected_once.discard(kernel_id)
        self._serving_since.pop(kernel_id, None)
        return super().remove_kernel(kernel_id)
