"""The worker process: load one model, then answer requests one at a time on its channel.

It runs in a process forked from a fork server (fork_servers.py), so the framework imports are already
done. stdout and stderr (fds 1 and 2, so C code and subprocesses too) go to a pipe the launcher
reads; the worker writes a request marker there before each request so every line can be tagged
with the request id that produced it, even if the process dies mid-request.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import resource
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from modeldrop.reasons import error_summary, raised_at

from modeldrop_local.sagemaker.worker.protocol import ChannelClosed, recv_frame, send_frame

MARKER_PREFIX = b"\x1e\x1fmodeldrop-request:"
MARKER_SUFFIX = b"\x1f\n"
STARTUP_ID = "model-load"
IDLE_ID = "-"
_PR_SET_PDEATHSIG = 1


def marker(request_id: str) -> bytes:
    return MARKER_PREFIX + request_id.encode("utf-8", "replace") + MARKER_SUFFIX


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


def _mark(request_id: str) -> None:
    _flush_output()
    os.write(1, marker(request_id))


def _die_with_parent() -> None:
    """SIGKILL this worker when the fork server exits (it is single-threaded, so this is safe)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return


def _limit_address_space(memory_mb: int) -> None:
    """A backstop under the launcher's RSS watchdog: a single huge allocation fails at once.

    The limit is generous (the fork server's mappings plus twice the cap) because thread stacks and
    malloc arenas reserve address space they never touch; the watchdog enforces the real cap.
    """
    with open("/proc/self/statm") as statm:
        current_bytes = int(statm.read().split()[0]) * resource.getpagesize()
    limit = current_bytes + 2 * memory_mb * 2**20 + 512 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_forked(config: dict[str, Any], fds: list[int]) -> None:
    """Entry point in the forked child (the fork server's worker entry): fds are the worker's channel
    and its log pipe. Never returns into the fork server's loop."""
    channel_fd, log_fd = fds
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    faulthandler.enable(file=sys.stderr, all_threads=True)
    _die_with_parent()
    channel = socket.socket(fileno=channel_fd)
    serve(config, channel)


def serve(config: dict[str, Any], channel: socket.socket) -> None:
    from modeldrop_local.sagemaker.worker.serving import ModelLoadError

    os.environ.update(config["environment"])
    for path in reversed(config["sys_path"]):
        sys.path.insert(0, path)
    model_dir = Path(config["model_dir"])
    os.chdir(model_dir)
    _limit_address_space(int(config["memory_mb"]))
    _mark(STARTUP_ID)
    started = time.perf_counter()
    try:
        handler = build_handler(config, model_dir)
    except ModelLoadError as error:
        _fail(channel, str(error))
        return
    except MemoryError as error:
        _fail(channel, f"over memory while loading the model (MemorySizeInMB {config['memory_mb']}): {error}")
        return
    except BaseException as error:  # the model's own loading code: the trace to the log, the reason in a line
        traceback.print_exception(error, file=sys.stderr)
        where = raised_at(error, prefer_under=str(model_dir))
        _fail(
            channel, f"the model failed to load: {error_summary(error)}" + (f" (at {where})" if where else "")
        )
        return
    load_ms = (time.perf_counter() - started) * 1000
    _mark(IDLE_ID)
    send_frame(channel, {"type": "ready", "load_ms": load_ms})
    while True:
        try:
            header, body = recv_frame(channel)
        except (ChannelClosed, OSError):
            return
        if header.get("type") == "ping":
            send_frame(channel, {"type": "pong"})
            continue
        request_id = str(header.get("request_id", ""))
        _mark(request_id)
        started = time.perf_counter()
        outcome = handler.invoke(body, header["content_type"], header["accept"], request_id)
        latency_us = int((time.perf_counter() - started) * 1_000_000)
        _flush_output()  # what the request printed is in the pipe before its answer leaves
        send_frame(
            channel,
            {
                "type": "result",
                "status": outcome.status,
                "content_type": outcome.content_type,
                "model_latency_us": latency_us,
                "timings_ms": outcome.timings_ms,
            },
            outcome.body,
        )
        # The idle marker goes after the answer: writing it first woke the launcher's log thread just as
        # the answer was due, and that thread then competed for the GIL with the request it belongs to.
        # Nothing runs in between (the worker is single-threaded), so every line keeps the same tag.
        _mark(IDLE_ID)


def build_handler(config: dict[str, Any], model_dir: Path) -> Any:
    """The serving stack of the image the model runs on (profiles.py chose it in the launcher)."""
    from modeldrop_local.sagemaker.worker.profiles import DefaultModel, Handler

    kind = Handler(config.get("handler") or Handler.MODELDROP)
    code_dir = Path(config["code_dir"]) if config["code_dir"] else None
    module = config.get("module")
    if kind is Handler.SAGEMAKER_CONTAINERS:
        from modeldrop_local.sagemaker.worker.sklearn_container import SageMakerContainersHandler

        assert code_dir is not None and module
        default_model = DefaultModel(config.get("default_model") or DefaultModel.NONE)
        base_dir = Path(config["container_base_dir"]) if config.get("container_base_dir") else None
        return SageMakerContainersHandler(model_dir, code_dir, module, default_model, base_dir=base_dir)
    if kind is Handler.XGBOOST_ALGORITHM:
        from modeldrop_local.sagemaker.worker.xgboost_container import XGBoostAlgorithmHandler

        return XGBoostAlgorithmHandler(model_dir)
    if kind is Handler.INFERENCE_TOOLKIT:
        from modeldrop_local.sagemaker.worker.toolkit_container import InferenceToolkitHandler

        return InferenceToolkitHandler(model_dir, code_dir, module)
    from modeldrop_local.sagemaker.worker.serving import ModelHandler

    return ModelHandler(
        model_dir,
        config["framework"],
        Path(config["artifact"]) if config["artifact"] else None,
        code_dir,
        module or "inference",
    )


def _fail(channel: socket.socket, reason: str) -> None:
    _mark(IDLE_ID)
    send_frame(channel, {"type": "failed", "reason": reason})
