"""WorkerLauncher: starts workers from per-framework fork servers, and stops them all on close.

A start plans how the model is served (serving_plan.py), installs code/requirements.txt into the
environment that serves, forks the worker from its fork server (fork_servers.py), and gives it a socket
(requests and answers), a log pump (log_pump.py) and an entry in the memory watchdog
(memory_watchdog.py); the Worker it returns (process.py) is the handle on that process.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from modeldrop.frameworks import Framework, default_version

from modeldrop_local.forking.client import ForkServerError
from modeldrop_local.sagemaker.worker.fork_servers import ImageForkServer
from modeldrop_local.sagemaker.worker.image_envs import EnvironmentCache, ImageEnvironment, environment_for
from modeldrop_local.sagemaker.worker.log_pump import LogPump
from modeldrop_local.sagemaker.worker.memory_watchdog import MemoryWatchdog
from modeldrop_local.sagemaker.worker.process import Worker
from modeldrop_local.sagemaker.worker.profiles import Handler, opt_ml_stand_in
from modeldrop_local.sagemaker.worker.requirements import RequirementsCache
from modeldrop_local.sagemaker.worker.serving_plan import plan_for
from modeldrop_local.sagemaker.worker.types import WorkerSpec, WorkerStartError


class WorkerLauncher:
    """Starts workers from per-framework fork servers (started lazily, reused). Thread-safe."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        pip_no_index: bool | None = None,
        environments: EnvironmentCache | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.requirements = RequirementsCache(self.cache_dir / "requirements", no_index=pip_no_index)
        # Pinned image environments live per machine, not per state directory: built once, reused.
        self.environments = environments or EnvironmentCache()
        self._pinned_requirements: dict[str, RequirementsCache] = {}
        self._pip_no_index = pip_no_index
        self._fork_servers: dict[str, ImageForkServer] = {}
        self._workers: set[Worker] = set()
        self._lock = threading.Lock()
        self._fork_lock = threading.Lock()
        self._watchdog = MemoryWatchdog()
        self._watchdog.start()
        self._closed = False

    def fork_server(self, preload: str, environment: ImageEnvironment | None = None) -> ImageForkServer:
        """The fork server of a preload, under a pinned image environment's interpreter when given."""
        python = str(self.environments.python(environment)) if environment is not None else sys.executable
        key = f"{environment.name}/{preload}" if environment is not None else preload
        with self._fork_lock:
            if self._closed:
                raise WorkerStartError("the local SageMaker is shutting down")
            server = self._fork_servers.get(key)
            if server is None or not server.alive():
                if server is not None:
                    server.close()
                server = ImageForkServer(preload, python=python, label=key)
                self._fork_servers[key] = server
        try:
            server.wait_ready()
        except ForkServerError as error:
            raise WorkerStartError(str(error)) from error
        return server

    def requirements_for(self, environment: ImageEnvironment | None) -> RequirementsCache:
        """code/requirements.txt is installed for, and checked against, the environment that serves."""
        if environment is None:
            return self.requirements
        python = str(self.environments.python(environment))  # may build it: not under the fork lock
        with self._fork_lock:
            cache = self._pinned_requirements.get(environment.name)
            if cache is None:
                cache = RequirementsCache(
                    self.cache_dir / "requirements" / environment.name,
                    no_index=self._pip_no_index,
                    python=python,
                    site_packages=self.environments.site_packages(environment),
                )
                self._pinned_requirements[environment.name] = cache
        return cache

    def warm_up(self, *preloads: str) -> None:
        """Start fork servers ahead of the first cold start (default: all but PyTorch); idempotent.

        scikit-learn and XGBoost start in the pinned environments of their default image versions.
        """
        for preload in preloads or ("sklearn", "xgboost", "onnx", "generic"):
            framework = {"sklearn": Framework.SKLEARN, "xgboost": Framework.XGBOOST}.get(preload)
            environment = environment_for(framework, default_version(framework)) if framework else None
            self.fork_server(preload, environment)

    def prepare(self, spec: WorkerSpec) -> None:
        """Detect the framework, install requirements, and load the model once in a worker."""
        self.start(spec).stop()

    def start(self, spec: WorkerSpec) -> Worker:
        started = time.perf_counter()
        plan = plan_for(spec)
        requirements = self.requirements_for(plan.environment)
        extra_path = requirements.install(plan.code_dir) if plan.code_dir is not None else None
        config: dict[str, Any] = {
            "model_dir": str(spec.model_dir),
            "framework": plan.framework,
            "artifact": str(plan.artifact) if plan.artifact else None,
            "code_dir": str(plan.code_dir) if plan.code_dir else None,
            "handler": plan.handler.value,
            "module": plan.module,
            "default_model": plan.default_model.value,
            "sys_path": [str(extra_path)] if extra_path else [],
            "environment": {str(k): str(v) for k, v in spec.environment.items()},
            "memory_mb": spec.memory_mb,
            "container_base_dir": None,
        }
        if plan.handler is Handler.SAGEMAKER_CONTAINERS:
            base = opt_ml_stand_in(self.cache_dir / "opt-ml", spec.model_dir, plan.code_dir)
            config["container_base_dir"] = str(base)
        server = self.fork_server(plan.preload, plan.environment)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        log_read, log_write = os.pipe()
        fork_started = time.perf_counter()
        try:
            pid = server.fork(config, [theirs.fileno(), log_write])
        except BaseException as error:
            ours.close()
            os.close(log_read)
            if isinstance(error, ForkServerError):  # the fork server is gone: this start fails with it
                raise WorkerStartError(str(error)) from error
            raise
        finally:
            theirs.close()
            os.close(log_write)
        log = LogPump(log_read, spec.log_path, str(pid))
        log.start()
        worker = Worker(pid, spec, ours, server, log, on_release=self._forget)
        self._watchdog.watch(worker)
        with self._lock:
            self._workers.add(worker)
        log.note(f"worker started ({plan.describe()} on the {server.label} fork server)")
        try:
            worker.wait_ready(spec.startup_timeout_s)
        except WorkerStartError as error:
            log.note(f"worker failed to start: {error.reason.splitlines()[0]}")
            raise
        worker.setup_time_ms = (time.perf_counter() - fork_started) * 1000
        log.note(
            f"worker ready: setup {worker.setup_time_ms:.1f} ms (model load {worker.load_ms:.1f} ms, "
            f"before the fork: plan, requirements, fork server {(fork_started - started) * 1000:.1f} ms)"
        )
        return worker

    def _forget(self, worker: Worker) -> None:
        with self._lock:
            self._workers.discard(worker)

    def close(self) -> None:
        with self._lock:
            workers = list(self._workers)
            self._workers.clear()
        for worker in workers:
            worker.stop()
        with self._fork_lock:
            self._closed = True
            servers = list(self._fork_servers.values())
            self._fork_servers.clear()
        for server in servers:
            server.close()
        self._watchdog.stop()
