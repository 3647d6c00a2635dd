"""Workers and the launcher that starts them from per-framework fork servers.

The launcher side of a worker is a socket (requests and answers), a thread that copies the
worker's stdout/stderr into the log with a timestamp and the request id, and an entry in the
memory watchdog, which kills a worker whose RSS passes MemorySizeInMB (the same cap SageMaker
Serverless enforces on a container), so a greedy model fails clearly and the host is unharmed.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import psutil
from modeldrop.frameworks import Framework, default_version

from modeldrop_local.sagemaker.worker.child import IDLE_ID, MARKER_PREFIX, MARKER_SUFFIX
from modeldrop_local.sagemaker.worker.image_envs import (
    EnvironmentCache,
    ImageEnvironment,
    environment_for,
    environment_for_image,
)
from modeldrop_local.sagemaker.worker.profiles import (
    GENERIC,
    NO_TORCH,
    PYTORCH,
    TENSORFLOW,
    XGBOOST,
    DefaultModel,
    Handler,
    find_user_module,
    opt_ml_stand_in,
    profile_for_image,
    tensorflow_layout_problem,
)
from modeldrop_local.sagemaker.worker.protocol import ChannelClosed, recv_frame, send_frame
from modeldrop_local.sagemaker.worker.requirements import RequirementsCache
from modeldrop_local.sagemaker.worker.types import (
    InvocationResult,
    WorkerCrashed,
    WorkerSpec,
    WorkerStartError,
    WorkerTimeout,
)
from modeldrop_local.sagemaker.worker.zygote import PRELOADS, ForkServer, describe_exit, kill_process_group

WATCHDOG_INTERVAL_S = 0.05
EXIT_REPORT_WAIT_S = 2.0
LOG_TAIL_LINES = 8


# ------------------------------------------------------------------------------ what to start


@dataclass(frozen=True)
class ServingPlan:
    """How a model is served: which serving stack, fork server, loader, artifact and user module."""

    framework: str | None  # modeldrop's built-in loader (sklearn, xgboost, onnx, pytorch); None: none
    preload: str  # which fork server (a key of PRELOADS)
    artifact: Path | None
    code_dir: Path | None  # the user module's folder (on sys.path; its requirements.txt is installed)
    handler: Handler = Handler.MODELDROP
    module: str | None = None  # the user module's name, imported from code_dir
    default_model: DefaultModel = DefaultModel.NONE  # the image's model_fn when the module has none
    family: str = GENERIC.family
    # The image's pinned library versions (image_envs.py); None: the project's own environment.
    environment: ImageEnvironment | None = None


def _relative_files(model_dir: Path) -> list[str]:
    return sorted(
        str(path.relative_to(model_dir)).replace(os.sep, "/")
        for path in model_dir.rglob("*")
        if path.is_file()
    )


def _torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def plan_for(spec: WorkerSpec) -> ServingPlan:
    """Serve the model as the image of spec.image does (profiles.py); a custom image: the generic plan."""
    if not spec.model_dir.is_dir():
        raise WorkerStartError(f"the model directory {spec.model_dir} does not exist")
    profile = profile_for_image(spec.image)
    if profile is GENERIC:
        return _generic_plan(spec)
    if profile is TENSORFLOW:
        problem = tensorflow_layout_problem(spec.model_dir)
        raise WorkerStartError(
            problem or f"{profile.without_program_reason} (the SavedModel layout is valid)"
        )
    module = find_user_module(profile, spec)
    if module is None and profile.without_program is None:
        raise WorkerStartError(profile.without_program_reason)
    handler = profile.with_program if module is not None else profile.without_program
    assert handler is not None
    names = _relative_files(spec.model_dir)
    if profile is PYTORCH:
        # Without torch here the toolkit still checks the layout first; loading then says torch is missing.
        preload = "pytorch" if _torch_installed() else "generic"
    elif profile is XGBOOST:
        preload = "xgboost"
    else:  # the scikit-learn image, which also hosts ONNX models (their inference.py imports onnxruntime)
        preload = "onnx" if any(name.endswith(".onnx") for name in names) else "sklearn"
    environment = environment_for_image(spec.image, pickled_model=preload in ("sklearn", "xgboost"))
    return ServingPlan(
        framework=None,
        preload=preload,
        artifact=None,
        code_dir=module.folder if module is not None else None,
        handler=handler,
        module=module.name if module is not None else None,
        family=profile.family,
        default_model=profile.default_model,
        environment=environment,
    )


def _generic_plan(spec: WorkerSpec) -> ServingPlan:
    """A custom image: the user module where the toolkit looks, else a built-in loader from the files."""
    from modeldrop.frameworks import Framework, artifact_framework, detect_framework

    names = _relative_files(spec.model_dir)
    module = find_user_module(GENERIC, spec)
    has_code = module is not None
    code_dir = module.folder if module is not None else None
    module_name = module.name if module is not None else None
    framework = detect_framework(names)
    if framework is Framework.TENSORFLOW and not has_code:
        raise WorkerStartError("TensorFlow SavedModels are not served by the local SageMaker")
    if framework is None:
        if has_code:
            return ServingPlan(None, "generic", None, code_dir, module=module_name)
        raise WorkerStartError(
            "unknown framework: no code/inference.py and no model artifact recognised in the tarball "
            "(expected model.joblib/.pkl, xgboost-model/.ubj/.bst, model.onnx or a TorchScript .pt); "
            f"files: {', '.join(names[:10]) or 'none'}"
        )
    # Root-level artifacts first: nested ones are usually auxiliary files.
    candidates = sorted(
        (name for name in names if artifact_framework(name) is framework), key=lambda n: (n.count("/"), n)
    )
    artifact = spec.model_dir / candidates[0] if candidates else None
    if framework is Framework.PYTORCH and not _torch_installed():
        if not has_code:
            raise WorkerStartError(NO_TORCH)
        return ServingPlan(None, "generic", artifact, code_dir, module=module_name)
    preload = framework.value if framework.value in PRELOADS else "generic"
    return ServingPlan(framework.value, preload, artifact, code_dir, module=module_name)


# ------------------------------------------------------------------------------------ logging


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LogPump(threading.Thread):
    """Copies a worker's stdout/stderr pipe into the log, one prefixed line at a time."""

    def __init__(self, read_fd: int, log_path: Path, pid_label: str) -> None:
        super().__init__(name=f"worker-log-{pid_label}", daemon=True)
        self._fd = read_fd
        self._log_path = log_path
        self.pid_label = pid_label
        self.request_id = IDLE_ID
        self.tail: list[str] = []
        self._file: BinaryIO | None = None
        self._lock = threading.Lock()
        self._ended = False

    def note(self, text: str, request_id: str | None = None) -> None:
        """A line from the launcher itself (start, exit, kill, timings), in the same log."""
        self._write_line(text.encode(), request_id or self.request_id, from_worker=False)

    def _write_line(self, line: bytes, request_id: str, from_worker: bool = True) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        with self._lock:
            if from_worker:
                self.tail = [*self.tail[-(LOG_TAIL_LINES - 1) :], text]
            if self._file is None:
                self._log_path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self._log_path.open("ab", buffering=0)
            self._file.write(f"{_timestamp()} pid={self.pid_label} [{request_id}] {text}\n".encode())
            if self._ended:  # a launcher note after the worker is gone: don't keep the file open
                self._file.close()
                self._file = None

    def run(self) -> None:
        pending = b""
        try:
            while True:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    break
                pending = self._consume(pending + chunk)
            if pending:
                self._write_line(pending, self.request_id)
        finally:
            os.close(self._fd)
            with self._lock:
                self._ended = True
            self.close_file()

    def _consume(self, data: bytes) -> bytes:
        """Write complete lines; switch request id at each marker; return the unfinished rest."""
        while True:
            start = data.find(MARKER_PREFIX)
            newline = data.find(b"\n")
            if start != -1 and (newline == -1 or start <= newline):
                end = data.find(MARKER_SUFFIX, start)
                if end == -1:
                    return data  # a marker split across reads
                if start > 0:  # a partial line the model left without a newline
                    self._write_line(data[:start], self.request_id)
                self.request_id = data[start + len(MARKER_PREFIX) : end].decode("utf-8", "replace")
                data = data[end + len(MARKER_SUFFIX) :]
                continue
            if newline == -1:
                return data
            self._write_line(data[:newline], self.request_id)
            data = data[newline + 1 :]

    def close_file(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# ------------------------------------------------------------------------------------- worker


class Worker:
    """One worker process serving one model, one request at a time."""

    def __init__(
        self,
        pid: int,
        spec: WorkerSpec,
        channel: socket.socket,
        fork_server: ForkServer,
        log: LogPump,
        on_release: Callable[[Worker], None] = lambda worker: None,
    ) -> None:
        self._on_release = on_release
        self.pid = pid
        self.spec = spec
        self.setup_time_ms = 0.0
        self.load_ms = 0.0
        self._channel = channel
        self._fork_server = fork_server
        self._log = log
        self._process: psutil.Process | None
        try:
            self._process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self._process = None
        self._lock = threading.Lock()
        self._stopped = False
        self.kill_reason: str | None = None  # set by the watchdog or a timeout

    # -- used by the launcher

    def wait_ready(self, timeout_s: float) -> None:
        try:
            header, _ = recv_frame(self._channel, time.monotonic() + timeout_s)
        except TimeoutError as error:
            self.kill(f"start-up timeout: the model did not load within {timeout_s:g} s")
            self.stop()
            raise WorkerStartError(self.kill_reason or "start-up timeout") from error
        except (ChannelClosed, OSError) as error:
            reason = self._death_reason("while loading the model")
            self.stop()
            raise WorkerStartError(reason) from error
        if header.get("type") != "ready":
            reason = str(header.get("reason", "the worker failed to start"))
            self.stop()
            raise WorkerStartError(reason)
        self.load_ms = float(header.get("load_ms", 0.0))

    def kill(self, reason: str) -> None:
        """SIGKILL the process (the watchdog and timeouts use this); the reason is kept for errors."""
        if self.kill_reason is None:
            self.kill_reason = reason
            self._log.note(f"worker killed: {reason}")
        if not self._fork_server.has_exited(self.pid):
            kill_process_group(self.pid)

    def _death_reason(self, when: str) -> str:
        status = self._fork_server.exit_status(self.pid, EXIT_REPORT_WAIT_S)
        if self.kill_reason is not None:
            return self.kill_reason
        tail = "\n".join(self._log.tail[-LOG_TAIL_LINES:])
        reason = f"the worker process died {when} ({describe_exit(status)})"
        return f"{reason}; last output:\n{tail}" if tail else reason

    # -- the API

    def invoke(
        self, body: bytes, content_type: str, accept: str, request_id: str, timeout_s: float = 60.0
    ) -> InvocationResult:
        with self._lock:
            if self._stopped:
                raise WorkerCrashed("the worker was stopped")
            deadline = time.monotonic() + timeout_s
            self._channel.settimeout(timeout_s)
            try:
                send_frame(
                    self._channel,
                    {
                        "type": "invoke",
                        "content_type": content_type,
                        "accept": accept,
                        "request_id": request_id,
                    },
                    body,
                )
                header, payload = recv_frame(self._channel, deadline)
            except TimeoutError as error:
                self.kill(f"the request {request_id} did not finish within {timeout_s:g} s")
                self._release()
                raise WorkerTimeout(
                    f"the model did not answer within {timeout_s:g} s; the worker was stopped"
                ) from error
            except (ChannelClosed, OSError) as error:
                reason = self._death_reason(f"during request {request_id}")
                self._release()
                raise WorkerCrashed(reason) from error
        timings = {str(k): float(v) for k, v in dict(header.get("timings_ms", {})).items()}
        stages = " ".join(f"{stage}={ms:.2f}ms" for stage, ms in timings.items())
        self._log.note(
            f"invocation status={header['status']} bytes={len(payload)} {stages}".rstrip(), request_id
        )
        return InvocationResult(
            status=int(header["status"]),
            body=payload,
            content_type=str(header["content_type"]),
            model_latency_us=int(header["model_latency_us"]),
            timings_ms=timings,
        )

    def is_alive(self) -> bool:
        if self._stopped or self._fork_server.has_exited(self.pid):
            return False
        if self._lock.acquire(blocking=False):  # no request in flight: the channel answers cheaply
            try:
                return not self._stopped and not self._channel_hung_up()
            finally:
                self._lock.release()
        try:
            return self._process is not None and self._process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def _channel_hung_up(self) -> bool:
        """Whether the idle worker's end of the channel is gone (or, never expected, it sent something).

        A process that exits closes its descriptors, so this sees a death as soon as the kernel does,
        for the cost of one poll(2); reading /proc (psutil) on every checkout cost ten times more.
        """
        poller = select.poll()
        poller.register(self._channel.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))

    def rss_bytes(self) -> int:
        if self._process is None or self._stopped:
            return 0
        try:
            return int(self._process.memory_info().rss)
        except psutil.NoSuchProcess:
            return 0

    def stop(self) -> None:
        """Idempotent. Kills the process and waits until it is reaped, so its memory is free.

        Safe while a request is in flight on another thread (DeleteEndpoint): the kill comes first,
        so that request ends at once with WorkerCrashed instead of holding the stop for up to 60 s.
        """
        if self._stopped:
            return
        if self.kill_reason is None:
            self.kill_reason = "the worker was stopped by the server"  # seen only by an in-flight request
        # The group even when the worker itself has exited: what its model forked may still run.
        kill_process_group(self.pid, leader_alive=not self._fork_server.has_exited(self.pid))
        with self._lock:
            if self._stopped:
                return
            self._release()
        self._log.note("worker stopped")

    def _release(self) -> None:
        self._stopped = True
        self._fork_server.exit_status(self.pid, EXIT_REPORT_WAIT_S)
        self._channel.close()
        self._on_release(self)


# ----------------------------------------------------------------------------------- launcher


class MemoryWatchdog(threading.Thread):
    """Polls every worker's RSS; kills one over its MemorySizeInMB with a clear reason."""

    def __init__(self) -> None:
        super().__init__(name="worker-memory-watchdog", daemon=True)
        self._workers: set[Worker] = set()
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def watch(self, worker: Worker) -> None:
        with self._lock:
            self._workers.add(worker)

    def run(self) -> None:
        while not self._stop_event.wait(WATCHDOG_INTERVAL_S):
            with self._lock:
                workers = list(self._workers)
            for worker in workers:
                if not worker.is_alive():
                    with self._lock:
                        self._workers.discard(worker)
                    continue
                rss = worker.rss_bytes()
                cap = worker.spec.memory_mb * 2**20
                if rss > cap:
                    worker.kill(f"over memory ({rss // 2**20} MB > MemorySizeInMB {worker.spec.memory_mb})")

    def stop(self) -> None:
        self._stop_event.set()


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
        self._fork_servers: dict[str, ForkServer] = {}
        self._workers: set[Worker] = set()
        self._lock = threading.Lock()
        self._fork_lock = threading.Lock()
        self._watchdog = MemoryWatchdog()
        self._watchdog.start()
        self._closed = False

    def fork_server(self, preload: str, environment: ImageEnvironment | None = None) -> ForkServer:
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
                server = ForkServer(preload, python=python, label=key)
                self._fork_servers[key] = server
        server.wait_ready()
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
            pid = server.fork(config, theirs.fileno(), log_write)
        except BaseException:
            ours.close()
            os.close(log_read)
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
        log.note(f"worker started ({_describe(plan)} on the {server.label} fork server)")
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


def _describe(plan: ServingPlan) -> str:
    if plan.handler is Handler.MODELDROP:
        return plan.framework or f"{plan.module}.py"
    user = f", user module {plan.module}" if plan.module else ""
    return f"{plan.family} image, {plan.handler.value}{user}"
