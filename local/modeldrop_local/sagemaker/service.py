"""The local SageMaker: its control plane, data plane and endpoint lifecycle around one registry.

- registry.py: the records (typed, records.py) and the endpoints' pools, metrics and logs;
- control_plane.py: SageMaker's CRUD and tag operations;
- lifecycle.py: deployments and deletions in the background, recovery after a restart, the reaper;
- data_plane.py: InvokeEndpoint, metrics and logs.

The WSGI app (app.py) sends `X-Amz-Target: SageMaker.*` to `control_plane.call` and invocations to
`data_plane.invoke`.
"""

from __future__ import annotations

import time

from modeldrop_local.sagemaker.control_plane import ControlPlane
from modeldrop_local.sagemaker.data_plane import DataPlane
from modeldrop_local.sagemaker.lifecycle import Clock, EndpointLifecycle
from modeldrop_local.sagemaker.logship import LogShipper
from modeldrop_local.sagemaker.pool import LauncherLike
from modeldrop_local.sagemaker.registry import EndpointRegistry
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings
from modeldrop_local.sagemaker.worker import WorkerLauncher


class LocalSageMaker:
    """One local SageMaker (one account, one region). Thread-safe; `close()` stops every worker.

    Idle workers are timed on `time.monotonic` by a reaper thread. A caller that brings its own
    `clock` (monotonic seconds) drives the reaper too: no thread runs, and `lifecycle.reap()` does one
    round, so a test moves the clock past the idle timeout and reaps instead of waiting for wall time.
    """

    def __init__(
        self,
        settings: LocalSageMakerSettings,
        launcher: LauncherLike | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.registry = EndpointRegistry(settings)
        self.lifecycle = EndpointLifecycle(
            self.registry, launcher or WorkerLauncher(self.registry.store.cache_dir), clock or time.monotonic
        )
        self.control_plane = ControlPlane(self.registry, self.lifecycle)
        self.data_plane = DataPlane(self.registry)
        self._shipper: LogShipper | None = None
        if settings.cloudwatch_logs_endpoint_url:
            logs_dir = self.registry.store.root / "logs"
            logs_dir.mkdir(parents=True, exist_ok=True)
            self._shipper = LogShipper(
                logs_dir, settings.cloudwatch_logs_endpoint_url, settings.region, settings.log_ship_interval_s
            )
            self._shipper.start()
        self.lifecycle.recover()
        if clock is None:
            self.lifecycle.start_reaper()

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait for background deployments and deletions (tests and shutdown)."""
        self.lifecycle.wait_idle(timeout_s)

    def close(self) -> None:
        """Stop the reaper and every worker. The state on disk stays for the next process."""
        self.lifecycle.close()
        if self._shipper is not None:
            self._shipper.stop()
