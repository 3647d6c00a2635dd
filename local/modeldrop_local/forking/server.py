"""The fork server process: import the libraries once, then fork one worker per request.

Forking a process that has threads or native sessions is unsafe (a fork copies only the calling
thread), so the server only imports: it never runs a handler or loads a model, and its "ready" message
counts its threads (`/proc/self/task`) so a host can check it stays at one.

Wire, on a SOCK_SEQPACKET Unix socket pair (one JSON object per message):
- server → host, once: {"type": "ready", "loaded", "failed", "threads"} after the imports;
- host → server: {"type": "fork", "seq", "payload"} with the worker's file descriptors attached
  (SCM_RIGHTS); the server answers {"type": "forked", "seq", "pid"};
- server → host: {"type": "exit", "pid", "status"} when a worker exits (the server is its parent, so
  it reaps it; `status` is the wait status).
The server stops when the host closes its end.

In the worker, the `--worker MODULE:FUNCTION` entry point is called with the payload and the
descriptors, and never returns into the server's loop. With `--isolate-workers` each worker leads a
process group of its own (a stop kills what its code forked too, `processes.kill_process_group`) and is
killed when the server stops; without, workers stay in the host's process group, ignore Ctrl-C as the
server does (the host decides when they stop), and outlive the server.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import traceback
import types
from collections.abc import Callable, Iterable
from typing import Any

from modeldrop_local.forking.processes import kill_process_group

MAX_MESSAGE = 1 << 20  # a functions worker's request carries its whole environment
MAX_FDS = 8
WORKER_FAILED_STATUS = 70  # EX_SOFTWARE: the entry point raised

WorkerEntry = Callable[[Any, list[int]], None]


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(json.dumps(message).encode())


def _register_bare_packages(names: Iterable[str]) -> None:
    """Make packages importable without running their __init__ (which may start a web stack or import
    what the server's interpreter does not have): each becomes an empty module on its directory."""
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        parent = importlib.import_module(parent_name)
        package = types.ModuleType(name)
        package.__path__ = [os.path.join(parent.__path__[0], leaf)]
        sys.modules[name] = package
        setattr(parent, leaf, package)


def _resolve(entry: str) -> Callable[..., Any]:
    module, _, function = entry.partition(":")
    resolved: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return resolved


def _import_all(names: Iterable[str]) -> tuple[list[str], list[str]]:
    loaded, failed = [], []
    for name in names:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except ImportError as error:
            failed.append(f"{name}: {error}")
    return loaded, failed


def serve(
    control: socket.socket,
    worker: WorkerEntry,
    *,
    loaded: list[str],
    failed: list[str],
    isolate_workers: bool,
) -> None:
    """The server's loop, once everything is imported: fork on request, report exits, until EOF."""
    gc.collect()
    gc.freeze()  # preloaded objects stay out of every later collection, in workers too: fewer copied pages
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    children: set[int] = set()
    threads = len(os.listdir("/proc/self/task"))
    _send(control, {"type": "ready", "loaded": loaded, "failed": failed, "threads": threads})
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj == wake_read:
                    _drain(wake_read)
                    _reap(control, children)
                    continue
                try:
                    message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, MAX_FDS)
                except ConnectionResetError:
                    return
                if not message:
                    return  # the host closed its end (or died): stop
                request = json.loads(message)
                # What the server printed must not be printed again by every worker's copy of the buffer.
                for stream in (sys.stdout, sys.stderr):
                    if stream is not None:
                        stream.flush()
                pid = os.fork()
                if pid == 0:
                    try:
                        if isolate_workers:
                            # Its own process group, so a stop kills what its code forked too (a process
                            # forked by a model would otherwise be reparented to init and outlive the cloud).
                            os.setpgid(0, 0)
                            signal.signal(signal.SIGINT, signal.SIG_DFL)
                        signal.set_wakeup_fd(-1)
                        signal.signal(
                            signal.SIGCHLD, signal.SIG_DFL
                        )  # its own subprocesses are its to wait for
                        selector.close()
                        control.close()
                        os.close(wake_read)
                        os.close(wake_write)
                        worker(request["payload"], fds)
                    except BaseException:
                        traceback.print_exc()
                        os._exit(WORKER_FAILED_STATUS)
                    finally:
                        os._exit(0)
                if isolate_workers:
                    with contextlib.suppress(OSError):  # both sides set it: no window before the child runs
                        os.setpgid(pid, pid)
                for fd in fds:
                    os.close(fd)
                children.add(pid)
                _send(control, {"type": "forked", "seq": request["seq"], "pid": pid})
                _reap(control, children)
    finally:
        if isolate_workers:
            for pid in children:
                kill_process_group(pid)


def _drain(wake_read: int) -> None:
    while True:
        try:
            if not os.read(wake_read, 512):
                return
        except BlockingIOError:
            return


def _reap(control: socket.socket, children: set[int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        try:
            _send(control, {"type": "exit", "pid": pid, "status": status})
        except OSError:
            return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modeldrop_local.forking", description=__doc__)
    parser.add_argument("--fork-server", dest="label", required=True, help="what it serves (ps, logs)")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--worker", required=True, help="MODULE:FUNCTION called in each worker")
    parser.add_argument("--preload", action="append", default=[], help="a module to import (repeatable)")
    parser.add_argument("--warm-up", help="MODULE:FUNCTION called once after the preloads")
    parser.add_argument("--bare-package", action="append", default=[], help="import without its __init__")
    parser.add_argument("--isolate-workers", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the host; it stops us
    control = socket.socket(fileno=args.control_fd)
    _register_bare_packages(args.bare_package)
    loaded, failed = _import_all(args.preload)
    if args.warm_up:
        _resolve(args.warm_up)()
    worker = _resolve(args.worker)  # its module is preloaded for the workers too
    serve(control, worker, loaded=loaded, failed=failed, isolate_workers=args.isolate_workers)
