"""The endpoint lifecycle: deployments and deletions in background threads, recovery, and the reaper.

A deployment thread downloads ModelDataUrl from S3, extracts it (model_data.py), loads the model once
in a worker (launcher.prepare) and starts the ProvisionedConcurrency workers; only then does it
switch the endpoint's pool in the registry. A failed update leaves the old deployment serving,
InService, with the FailureReason set; a failed create is Failed. The reaper stops idle on-demand
workers (scale to zero) and restarts provisioned ones that died, on the clock it is given.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from modeldrop.reasons import error_summary

from modeldrop_local.sagemaker.model_data import DeploymentFailed, download_model_data, fetch_source_dir
from modeldrop_local.sagemaker.pool import LauncherLike, ServerlessPool
from modeldrop_local.sagemaker.records import EndpointDeployment
from modeldrop_local.sagemaker.registry import EndpointRegistry
from modeldrop_local.sagemaker.worker import WorkerStartError
from modeldrop_local.sagemaker.worker.profiles import PING_FAILED

WARM_RETRY_S = 5.0  # a provisioned worker that failed to start is retried after this long
Clock = Callable[[], float]  # seconds on a monotonic scale: time.monotonic, or a test's own


class EndpointLifecycle:
    """Brings deployments up and endpoints down; `close()` stops the reaper and every pool."""

    def __init__(
        self, registry: EndpointRegistry, launcher: LauncherLike, clock: Clock = time.monotonic
    ) -> None:
        self.registry = registry
        self.settings = registry.settings
        self.launcher = launcher
        self.clock = clock
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._reaper: threading.Thread | None = None

    def _log(self, name: str) -> Callable[[str], None]:
        return functools.partial(self.registry.log.write, name)

    # ----------------------------------------------------------------------------- threads

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            finally:
                self._threads.discard(thread)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.add(thread)
        thread.start()

    def deploy_in_background(self, name: str, deployment: EndpointDeployment) -> None:
        self._spawn(f"deploy-{name}-{deployment.deployment_id}", lambda: self._deploy(name, deployment))

    def delete_in_background(self, name: str) -> None:
        self._spawn(f"delete-{name}", lambda: self._finish_delete(name))

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait for background deployments and deletions (tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    # -------------------------------------------------------------------------- deployment

    def _deploy(self, name: str, deployment: EndpointDeployment) -> None:
        log = self._log(name)
        pool: ServerlessPool | None = None
        reason: str | None = None
        started = time.monotonic()
        step = "downloading the model data"
        try:
            s3: Any = boto3.client(
                "s3", endpoint_url=self.settings.s3_endpoint_url, region_name=self.settings.region
            )
            download_model_data(s3, deployment, log)
            step = "fetching the source directory"
            deployment = fetch_source_dir(s3, deployment, self.registry.store.cache_dir, log)
            step = "loading the model"
            pool = self.new_pool(name, deployment)
            self.launcher.prepare(pool.spec)
            step = "starting the provisioned workers"
            pool.warm()
        except DeploymentFailed as failure:
            reason = failure.reason
        except WorkerStartError as error:
            # SageMaker's own FailureReason, then what its CloudWatch logs would have shown.
            if error.log_detail:
                log(error.log_detail)
            reason = f"{PING_FAILED.format(variant=deployment.variant_name)} Local SageMaker: {error.reason}"
        except Exception as error:  # an unforeseen failure must still end Creating/Updating, with its cause
            # One sentence for DescribeEndpoint's FailureReason; the trace goes to the endpoint's log.
            log(f"internal error while {step}:\n{traceback.format_exc().rstrip()}")
            reason = f"Internal error while {step}: {error_summary(error)}."
        if self._stopping.is_set():  # shutting down: leave Pending for the next process to resume
            if pool is not None:
                pool.close()
            return
        retired_pool, retired_dir, reason = self._settle(name, deployment, pool, reason)
        if retired_pool is not None:
            retired_pool.close()
        if retired_dir is not None:
            shutil.rmtree(retired_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # the endpoint's folder, once its last deployment is gone
                retired_dir.parent.rmdir()
        elapsed = time.monotonic() - started
        if reason is None:
            log(f"InService on {deployment.endpoint_config_name} after {elapsed:.2f} s")
        else:
            log(f"deployment of {deployment.endpoint_config_name} failed: {reason}")

    def _settle(
        self, name: str, deployment: EndpointDeployment, pool: ServerlessPool | None, reason: str | None
    ) -> tuple[ServerlessPool | None, Path | None, str | None]:
        """Record the deployment's outcome; returns the pool and model folder it retires, and the reason."""
        with self.registry.lock:
            record = self.registry.endpoints.get(name)
            if (
                record is None
                or record.endpoint_status == "Deleting"
                or record.pending is None
                or record.pending.deployment_id != deployment.deployment_id
            ):
                # Superseded or deleted meanwhile.
                return (
                    pool,
                    deployment.model_dir,
                    reason or "superseded by a later UpdateEndpoint or DeleteEndpoint",
                )
            now = time.time()
            record.pending, record.last_modified_time = None, now
            if reason is None:
                assert pool is not None
                previous = record.deployed
                retired = self.registry.pools.get(name), previous.model_dir if previous else None
                self.registry.pools[name] = pool
                record.endpoint_status = "InService"
                record.endpoint_config_name = deployment.endpoint_config_name
                record.deployed, record.failure_reason = deployment, None
                self.registry.endpoints.put(record)
                return *retired, None
            rolled_back = record.deployed is not None
            record.endpoint_status = "InService" if rolled_back else "Failed"
            record.failure_reason = reason
            if record.deployed is not None:
                record.endpoint_config_name = record.deployed.endpoint_config_name
            self.registry.endpoints.put(record)
            return pool, deployment.model_dir, reason

    def new_pool(self, name: str, deployment: EndpointDeployment) -> ServerlessPool:
        return ServerlessPool(
            name,
            deployment,
            self.launcher,
            self.registry.metrics_for(name),
            log_path=self.registry.store.log_path(name),
            idle_timeout_s=self.settings.idle_timeout_s,
            startup_timeout_s=self.settings.startup_timeout_s,
            clock=self.clock,
        )

    def _finish_delete(self, name: str) -> None:
        with self.registry.lock:
            pool = self.registry.pools.pop(name, None)
        if pool is not None:
            pool.close()
        shutil.rmtree(self.registry.store.root / "model-data" / name, ignore_errors=True)
        with self.registry.lock:
            record = self.registry.endpoints.get(name)
            if record is not None and record.endpoint_status == "Deleting":
                self.registry.endpoints.delete(name)
                self.registry.forget(name)
        self.registry.log.write(name, "deleted")

    def recover(self) -> None:
        """Bring back what a previous process on the same state_dir left: serve, resume, or finish."""
        for record in self.registry.endpoints.all():
            name = record.endpoint_name
            if record.endpoint_status == "Deleting":
                self.registry.deleting.add(name)
                self.delete_in_background(name)
                continue
            deployed = record.deployed
            if deployed is not None and deployed.model_dir.is_dir():
                pool = self.new_pool(name, deployed)
                self.registry.pools[name] = pool
                if deployed.provisioned_concurrency:
                    self._spawn(f"warm-{name}", functools.partial(self._warm, pool))
            elif deployed is not None:  # its files are gone: deploy the same snapshot again
                record.deployed, record.pending, record.endpoint_status = None, deployed, "Creating"
                self.registry.endpoints.put(record)
            if record.pending is not None:
                self.registry.log.write(
                    name, f"resuming the deployment of {record.pending.endpoint_config_name} after a restart"
                )
                self.deploy_in_background(name, record.pending)

    # ------------------------------------------------------------------------------ reaper

    def _warm(self, pool: ServerlessPool) -> None:
        try:
            pool.warm()
        except WorkerStartError as error:
            pool.last_warm_failure = self.clock()
            self.registry.log.write(pool.endpoint_name, f"provisioned worker failed to start: {error.reason}")

    def reap(self) -> None:
        """One round of the reaper: scale idle on-demand workers to zero, keep provisioned ones up."""
        for pool in list(self.registry.pools.values()):
            stopped = pool.reap()
            if stopped:
                self.registry.log.write(pool.endpoint_name, f"scaled in: stopped {stopped} idle worker(s)")
            failed_at = pool.last_warm_failure
            backing_off = failed_at is not None and self.clock() - failed_at < WARM_RETRY_S
            if not backing_off and pool.stats()["provisioned"] < pool.deployment.provisioned_concurrency:
                self._warm(pool)

    def start_reaper(self) -> None:
        def reap_forever() -> None:
            while not self._stopping.wait(self.settings.reaper_interval_s):
                self.reap()

        self._reaper = threading.Thread(target=reap_forever, name="sagemaker-reaper", daemon=True)
        self._reaper.start()

    def close(self) -> None:
        """Stop the reaper and every worker. The state on disk stays for the next process."""
        self._stopping.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        with self.registry.lock:
            pools = list(self.registry.pools.values())
            self.registry.pools.clear()
        for pool in pools:
            pool.close()
        self.launcher.close()
