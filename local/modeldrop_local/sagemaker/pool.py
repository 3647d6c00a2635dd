"""The serverless pool of one endpoint: on-demand workers, MaxConcurrency, scale to zero.

SageMaker Serverless semantics: each worker takes one request at a time; at most MaxConcurrency
requests are in flight; one more is throttled at once (there is no queue); a request that finds no
idle worker cold-starts one; on-demand workers idle for idle_timeout_s are stopped by the reaper;
ProvisionedConcurrency workers are started before the endpoint goes InService and never reaped
(a dead one is replaced by the reaper). A worker that crashes or times out is dropped, and the
next request starts a fresh one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modeldrop_local.sagemaker.metrics import EndpointMetrics
from modeldrop_local.sagemaker.records import EndpointDeployment
from modeldrop_local.sagemaker.worker import (
    WorkerAnswer,
    WorkerCrashed,
    WorkerSpec,
    WorkerStartError,
    WorkerTimeout,
)


class WorkerLike(Protocol):
    pid: int
    setup_time_ms: float

    def invoke(
        self, body: bytes, content_type: str, accept: str, request_id: str, timeout_s: float = 60.0
    ) -> WorkerAnswer: ...
    def is_alive(self) -> bool: ...
    def stop(self) -> None: ...
    def rss_bytes(self) -> int: ...


class LauncherLike(Protocol):
    def prepare(self, spec: WorkerSpec) -> None: ...
    def start(self, spec: WorkerSpec) -> Any: ...  # a WorkerLike
    def close(self) -> None: ...


class MaxConcurrencyReached(Exception):
    """MaxConcurrency requests are already in flight."""


class PoolClosed(Exception):
    """The pool was retired (update switched configs, or the endpoint is being deleted)."""


@dataclass
class _Slot:
    worker: WorkerLike
    provisioned: bool
    last_used: float  # on the pool's clock


class ServerlessPool:
    def __init__(
        self,
        endpoint_name: str,
        deployment: EndpointDeployment,
        launcher: LauncherLike,
        metrics: EndpointMetrics,
        *,
        log_path: Path,
        idle_timeout_s: float,
        startup_timeout_s: float = 180.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.deployment = deployment
        self.spec = WorkerSpec(
            model_dir=deployment.model_dir,
            image=deployment.image,
            environment=dict(deployment.environment),
            memory_mb=deployment.memory_mb,
            log_path=log_path,
            startup_timeout_s=startup_timeout_s,
            source_dir=deployment.source_dir,
        )
        self._launcher = launcher
        self._metrics = metrics
        self._idle_timeout_s = idle_timeout_s
        self._clock = clock  # when a worker was last used, and how long it has idled since
        self._lock = threading.Lock()
        self._idle: list[_Slot] = []
        self._busy = 0
        self._provisioned_live = 0
        self._closed = False
        self.last_warm_failure: float | None = None  # on the clock; the reaper backs off after a failure

    # -- lifecycle

    def warm(self) -> None:
        """Start the ProvisionedConcurrency workers (before InService, and again after a crash)."""
        while True:
            with self._lock:
                if self._closed or self._provisioned_live >= self.deployment.provisioned_concurrency:
                    return
                self._provisioned_live += 1
            try:
                worker = self._cold_start()
            except BaseException:
                with self._lock:
                    self._provisioned_live -= 1
                raise
            with self._lock:
                if self._closed:
                    self._provisioned_live -= 1
                    stop_now: WorkerLike | None = worker
                else:
                    self._idle.append(_Slot(worker, provisioned=True, last_used=self._clock()))
                    stop_now = None
            if stop_now is not None:
                stop_now.stop()
                return

    def reap(self, now: float | None = None) -> int:
        """Stop on-demand workers idle longer than idle_timeout_s; returns how many were stopped."""
        now = self._clock() if now is None else now
        with self._lock:
            expired = [
                slot
                for slot in self._idle
                if not slot.provisioned and now - slot.last_used >= self._idle_timeout_s
            ]
            dead = [slot for slot in self._idle if slot not in expired and not slot.worker.is_alive()]
            for slot in expired + dead:
                self._idle.remove(slot)
                if slot.provisioned:
                    self._provisioned_live -= 1
        for slot in expired + dead:
            slot.worker.stop()
        return len(expired)

    def close(self) -> None:
        """Stop idle workers now; busy ones are stopped when their request ends."""
        with self._lock:
            self._closed = True
            slots, self._idle = self._idle, []
        for slot in slots:
            slot.worker.stop()

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "busy": self._busy,
                "idle": len(self._idle),
                "workers": self._busy + len(self._idle),
                "provisioned": self._provisioned_live,
            }

    # -- requests

    def _cold_start(self) -> WorkerLike:
        worker: WorkerLike = self._launcher.start(self.spec)
        self._metrics.record("ModelSetupTime", worker.setup_time_ms * 1000)
        return worker

    def _take_idle(self) -> _Slot | None:
        """Provisioned workers first (they never expire), then the most recently used."""
        while self._idle:
            provisioned = [slot for slot in self._idle if slot.provisioned]
            slot = provisioned[-1] if provisioned else self._idle[-1]
            self._idle.remove(slot)
            if slot.worker.is_alive():
                return slot
            if slot.provisioned:
                self._provisioned_live -= 1
            threading.Thread(target=slot.worker.stop, daemon=True).start()
        return None

    def invoke(
        self, body: bytes, content_type: str, accept: str, request_id: str, timeout_s: float
    ) -> WorkerAnswer:
        """Raises MaxConcurrencyReached, PoolClosed, WorkerStartError (cold start), WorkerCrashed or
        WorkerTimeout."""
        with self._lock:
            if self._closed:
                raise PoolClosed(self.endpoint_name)
            if self._busy >= self.deployment.max_concurrency:
                self._metrics.record("Throttles")
                raise MaxConcurrencyReached(self.endpoint_name)
            self._busy += 1
            self._metrics.observe_concurrency(self._busy)
            slot = self._take_idle()
        keep: _Slot | None = None
        try:
            if slot is None:
                slot = _Slot(self._cold_start(), provisioned=False, last_used=self._clock())
            try:
                result = slot.worker.invoke(body, content_type, accept, request_id, timeout_s)
            except (WorkerCrashed, WorkerTimeout):
                slot.worker.stop()
                raise
            keep = slot
            return result
        finally:
            with self._lock:
                self._busy -= 1
                if keep is not None and not self._closed:
                    keep.last_used = self._clock()
                    self._idle.append(keep)
                    keep = None
                elif slot is not None and keep is None and slot.provisioned:
                    self._provisioned_live -= 1
            if keep is not None:  # the pool was closed while this request ran
                keep.worker.stop()


__all__ = [
    "EndpointDeployment",
    "LauncherLike",
    "MaxConcurrencyReached",
    "PoolClosed",
    "ServerlessPool",
    "WorkerLike",
    "WorkerStartError",
]
