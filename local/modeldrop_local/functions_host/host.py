"""The functions host: invokes the stack's functions as Lambda does, in warm worker processes, up to
each function's concurrency at once; errors (timeouts, crashes, import failures) come back in
Lambda's shape."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modeldrop_local.functions_host.fork_server import FunctionsForkServer
from modeldrop_local.functions_host.runtime import error_payload
from modeldrop_local.functions_host.worker import INIT_TIMEOUT_S, FunctionWorker

if TYPE_CHECKING:
    from modeldrop_local.functions_host.emf import EmfSink
    from modeldrop_local.template import FunctionSpec


@dataclass(frozen=True)
class InvokeResult:
    """What Lambda's Invoke returns: the payload bytes, and whether it is a function error."""

    payload: bytes
    function_error: bool
    request_id: str
    duration_ms: float


# Lambda runs as many invocations of a function at once as its ReservedConcurrentExecutions allow (else
# up to the account's unreserved pool, 1000 by default). On one machine each invocation is a process, so
# a function without a reservation runs at most this many at once here; more wait for a free worker.
DEFAULT_CONCURRENCY = 10


class FunctionsHost:
    """Invokes the stack's functions in warm worker processes, up to each function's concurrency at once.

    `spare_workers` workers per function are kept started ahead of demand (their handler imported while
    nothing waits on them), so an event is not held up by a cold start while the machine is busy: on
    Lambda each concurrent invocation gets its own sandbox, here they would share two cores.
    """

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        base_environment: Mapping[str, str],
        default_concurrency: int = DEFAULT_CONCURRENCY,
        log_dir: Path | None = None,
        condensed_console: bool = False,
        spare_workers: int = 0,
        fork_server: FunctionsForkServer | None = None,
        metrics_sink: EmfSink | None = None,
    ) -> None:
        """log_dir: each function's log in log_dir/<name>.log; else on this console, as written or,
        with condensed_console, one readable line per record (see console.console_line).
        metrics_sink: where the EMF records of the functions' logs become CloudWatch metrics (emf.py)."""
        self.metrics_sink = metrics_sink
        self.log_dir = log_dir
        self.condensed_console = condensed_console
        self._functions = dict(functions)
        self._base_environment = dict(base_environment)
        self._idle: dict[str, list[FunctionWorker]] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        self._default_concurrency = default_concurrency
        self._spare_workers = spare_workers
        self._closed = False
        # Started by the caller ahead of time (its imports overlap the caller's own start), else on first use.
        self._fork_server: FunctionsForkServer | None = fork_server
        self._fork_server_lock = threading.Lock()
        # The latest invocations (function, request id, failed), bounded: `local up` may run for days.
        self.invocations: deque[tuple[str, str, bool]] = deque(maxlen=1000)

    def spec(self, name_or_arn: str) -> FunctionSpec:
        name = name_or_arn.split(":")[6] if name_or_arn.startswith("arn:") else name_or_arn
        for spec in self._functions.values():
            if name in (spec.name, spec.logical_id):
                return spec
        raise KeyError(f"Function not found: {name_or_arn}")

    def concurrency(self, spec: FunctionSpec) -> int:
        if spec.reserved_concurrency is not None:
            return max(1, spec.reserved_concurrency)
        return self._default_concurrency

    def invoke(self, name_or_arn: str, payload: bytes) -> InvokeResult:
        """Run one invocation; raises KeyError for an unknown function."""
        spec = self.spec(name_or_arn)
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        with self._lock:
            slots = self._slots.setdefault(spec.name, threading.BoundedSemaphore(self.concurrency(spec)))
        with slots:
            worker = self._take(spec)
            kind, body = worker.invoke(payload, request_id)
            if kind in ("ok", "error"):
                self._give_back(worker)
            elif kind == "timeout":
                worker.kill()
                body = error_payload(
                    "Sandbox.Timedout", f"{request_id} Task timed out after {spec.timeout_s:.2f} seconds"
                )
            elif kind == "crashed":
                worker.kill()
                body = error_payload("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited")
            else:  # init_error: a broken handler stays broken; start fresh next time in case it was fixed
                worker.stop()
        failed = kind != "ok"
        self.invocations.append((spec.name, request_id, failed))
        return InvokeResult(body, failed, request_id, (time.perf_counter() - started) * 1000)

    def invoke_async(self, name_or_arn: str, payload: bytes) -> threading.Thread:
        """Event invocation (S3 notifications, InvocationType=Event): runs in the background."""
        self.spec(name_or_arn)
        thread = threading.Thread(target=self.invoke, args=(name_or_arn, payload), daemon=True)
        thread.start()
        return thread

    def _take(self, spec: FunctionSpec) -> FunctionWorker:
        with self._lock:
            if self._closed:
                raise RuntimeError("functions host is stopped")
            idle = self._idle.setdefault(spec.name, [])
            taken = None
            while idle and taken is None:
                worker = idle.pop()
                if worker.alive():
                    taken = worker
            missing = self._spare_workers - len(idle)
        if taken is None:
            taken = self._start_worker(spec)
        # Start the replacements now (a process spawn, a few ms); they import while this one works.
        for _ in range(missing):
            self._give_back(self._start_worker(spec))
        return taken

    def _start_worker(self, spec: FunctionSpec) -> FunctionWorker:
        return FunctionWorker(
            spec,
            self._base_environment,
            self.log_dir,
            self.condensed_console,
            self._running_fork_server(),
            self.metrics_sink,
        )

    def _running_fork_server(self) -> FunctionsForkServer | None:
        with self._fork_server_lock:
            if self._closed:
                return None
            if self._fork_server is None or not self._fork_server.alive():
                self._fork_server = FunctionsForkServer(self._base_environment)
            return self._fork_server

    def _give_back(self, worker: FunctionWorker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.setdefault(worker.spec.name, []).append(worker)
                return
        worker.stop()

    def start_spares(self) -> None:
        """Start each function's spare workers ahead of traffic; their handlers import in the background
        (this returns once the processes are spawned), so the first event does not wait for a cold start."""
        for spec in self._functions.values():
            with self._lock:
                missing = self._spare_workers - len(self._idle.get(spec.name, []))
            for _ in range(missing):
                self._give_back(self._start_worker(spec))

    def await_spares(self, timeout_s: float = INIT_TIMEOUT_S) -> None:
        """Wait until the spare workers have imported their handlers (or timeout_s has passed), so the
        first events after start find them warm, as with Lambda's provisioned concurrency."""
        deadline = time.time() + timeout_s
        with self._lock:
            spares = [worker for idle in self._idle.values() for worker in idle]
        for worker in spares:
            worker.await_init(deadline)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = [worker for idle in self._idle.values() for worker in idle]
            self._idle.clear()
        for worker in workers:
            worker.stop()
        with self._fork_server_lock:
            fork_server, self._fork_server = self._fork_server, None
        if fork_server is not None:
            fork_server.close()
