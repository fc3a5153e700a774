"""The dashboard's kernel manager: a page's kernel is shut down once no page has been connected to it for a while.

jupyter_server culls a kernel after `cull_idle_timeout` seconds without kernel messages, but the dashboard's run
watchers push chart updates from background threads all the time, and every such message counts as activity: a page
closed without an unload event (a crash, a lost connection, a `curl` of the page) would keep its kernel forever.
Here the idle clock is the time since the last page (websocket) left, or, when no page ever connected, since the
notebook finished executing or a page last asked for the kernel; the server's own culler still does the polling
(`cull_interval`) and the shutdown.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager


class PageKernelManager(AsyncMappingKernelManager):
    """Culls kernels by connection: unconnected (and not executing) for `cull_idle_timeout` seconds -> shut down.

    Kernels with a page connected are never culled, whatever `cull_connected` says: someone is looking at them.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._unwatched_since: dict[str, datetime] = {}

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        kernel_id = await super().start_kernel(*args, **kwargs)
        self._unwatched_since.setdefault(kernel_id, utcnow())
        return kernel_id

    def get_kernel(self, kernel_id: str) -> Any:
        """Also called when a page opens its kernel's websocket: the clock restarts, so that a page still connecting
        (the server waits for the kernel to answer first) is not culled under it."""
        kernel = super().get_kernel(kernel_id)
        if kernel_id in self._unwatched_since:
            self._unwatched_since[kernel_id] = utcnow()
        return kernel

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)
        self._unwatched_since.pop(kernel_id, None)

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)
        if kernel_id in self._kernels and self._kernel_connections.get(kernel_id, 0) <= 0:
            self._unwatched_since[kernel_id] = utcnow()

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        kernel = self._kernels[kernel_id]
        if getattr(kernel, "execution_state", None) == "dead":
            return await super().cull_kernel_if_idle(kernel_id)
        if self._kernel_connections.get(kernel_id, 0) > 0:
            return None  # a page is connected
        if getattr(kernel, "execution_state", None) == "busy":  # Voila executing the notebook for a page on its way
            self._unwatched_since[kernel_id] = utcnow()
            return None
        since = self._unwatched_since.setdefault(kernel_id, utcnow())
        unwatched = utcnow() - since
        timeout = kernel.kernel_spec.metadata.get("cull_idle_timeout", self.cull_idle_timeout)
        if unwatched > timedelta(seconds=timeout):
            self.log.warning("Culling kernel %s: no page connected for %d s", kernel_id, unwatched.total_seconds())
            await self.shutdown_kernel(kernel_id)
        return None

    def remove_kernel(self, kernel_id: str) -> Any:
        self._unwatched_since.pop(kernel_id, None)
        return super().remove_kernel(kernel_id)
