"""Worker: the launcher's handle on one worker process serving one model, one request at a time.

Requests and answers go over a private socket (protocol.py); the process's output goes to its log
through a LogPump; a death, a kill (timeout, memory watchdog) or a stop ends the handle with a clear reason.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable

import psutil

from modeldrop_local.forking.client import ForkServer
from modeldrop_local.forking.processes import describe_exit, kill_process_group
from modeldrop_local.sagemaker.worker.log_pump import LOG_TAIL_LINES, LogPump
from modeldrop_local.sagemaker.worker.protocol import ChannelClosed, recv_frame, send_frame
from modeldrop_local.sagemaker.worker.types import (
    WorkerAnswer,
    WorkerCrashed,
    WorkerSpec,
    WorkerStartError,
    WorkerTimeout,
)

EXIT_REPORT_WAIT_S = 2.0


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
    ) -> WorkerAnswer:
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
        return WorkerAnswer(
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
