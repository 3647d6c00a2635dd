"""The fork server ("zygote"): one per framework, with that framework's imports preloaded.

A cold start forks from it, so it pays for the model load, not for Python and library imports.
Forking a process that has threads or native sessions is unsafe, so the zygote only imports: it
never loads a model. (Importing onnxruntime starts idle native threads that wait on a futex; a
fork only copies the calling thread, the worker creates its own session and thread pool after the
fork, and 60 forks in a row that each built and ran a session all succeeded.)

Wire: a SOCK_SEQPACKET Unix socket pair. The launcher sends {"type": "fork", "seq", "config"}
with two file descriptors attached (the worker's channel and its log pipe); the zygote answers
{"type": "forked", "seq", "pid"}, and announces every exit of a child with
{"type": "exit", "pid", "status"} (it is their parent, so it reaps them).
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
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import modeldrop.frameworks

from modeldrop_local.sagemaker.worker.types import WorkerStartError

# What each fork server imports up front. A custom code/inference.py runs on the server of the
# image's framework, so common helpers of that stack are included.
PRELOADS: dict[str, tuple[str, ...]] = {
    "generic": ("numpy",),
    "sklearn": (
        "numpy",
        "scipy",
        "scipy.sparse",
        "joblib",
        "sklearn",
        "sklearn.base",
        "sklearn.utils",
        "sklearn.linear_model",
        "sklearn.ensemble",
        "sklearn.tree",
        "sklearn.pipeline",
        "sklearn.preprocessing",
        "sklearn.neighbors",
    ),
    "xgboost": ("numpy", "scipy", "xgboost"),
    "onnx": ("numpy", "onnxruntime"),
    "pytorch": ("numpy", "torch"),
}
# One thread per worker, as a SageMaker Serverless vCPU share; set before any native library loads.
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
MAX_MESSAGE = 1 << 16
# The zygote imports this package without running the __init__ of modeldrop_local.sagemaker (the whole
# server and its web stack) or of its worker package (the launcher, psutil): it must stay small, free
# of any thread a server module may start, and run in a pinned image environment that has none of those.
BOOTSTRAP = (
    "import sys, types; root = sys.argv.pop(1)\n"
    "for name, path in (('modeldrop_local.sagemaker', root), ('modeldrop_local.sagemaker.worker', "
    "root + '/worker')):\n"
    "    package = types.ModuleType(name); package.__path__ = [path]; sys.modules[name] = package\n"
    "from modeldrop_local.sagemaker.worker.zygote import main; main()"
)
READY_TIMEOUT_S = 120.0


# ------------------------------------------------------------------------------------ server side


def _send(sock: socket.socket, message: Mapping[str, Any]) -> None:
    sock.send(json.dumps(message).encode())


def serve(control_fd: int, preload: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C belongs to the server; it stops us
    loaded, failed = [], []
    for name in PRELOADS.get(preload, PRELOADS["generic"]):
        try:
            importlib.import_module(name)
            loaded.append(name)
        except ImportError as error:
            failed.append(f"{name}: {error}")
    from modeldrop_local.sagemaker.worker import child, serving  # noqa: F401 (preloaded for workers)

    gc.collect()
    gc.freeze()  # preloaded objects stay out of every later collection, in workers too: fewer copied pages
    control = socket.socket(fileno=control_fd)
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
                    while True:
                        try:
                            if not os.read(wake_read, 512):
                                break
                        except BlockingIOError:
                            break
                    _reap(control, children)
                    continue
                message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 4)
                if not message:
                    return  # the launcher closed its end (or died): stop
                request = json.loads(message)
                pid = os.fork()
                if pid == 0:
                    try:
                        # Its own process group, so a stop kills what user code forked too (a process
                        # forked in model_fn would otherwise be reparented to init and outlive the cloud).
                        os.setpgid(0, 0)
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        signal.signal(signal.SIGINT, signal.SIG_DFL)
                        selector.close()
                        control.close()
                        os.close(wake_read)
                        os.close(wake_write)
                        child.run_forked(request["config"], fds[0], fds[1])
                    except BaseException:
                        traceback.print_exc()
                        os._exit(70)
                    finally:
                        os._exit(0)
                with contextlib.suppress(OSError):  # both sides set it: no window before the child runs
                    os.setpgid(pid, pid)
                for fd in fds:
                    os.close(fd)
                children.add(pid)
                _send(control, {"type": "forked", "seq": request["seq"], "pid": pid})
                _reap(control, children)
    finally:
        for pid in children:
            kill_process_group(pid)


def kill_process_group(pid: int, *, leader_alive: bool = True) -> None:
    """SIGKILL a worker and every process it forked (each worker leads its own process group).

    With `leader_alive=False` (the worker was reaped, its pid free for reuse) only the group is
    signalled: a group outlives its leader while any member runs, and is gone with the last one.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if leader_alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--preload", default="generic")
    args = parser.parse_args()
    serve(args.fd, args.preload)


# ------------------------------------------------------------------------------------ client side

# What a worker inherits from the server's environment: what Python and pip need, and the AWS
# settings (on SageMaker the container gets its region and role credentials). Nothing else of the
# host leaks into model code; PrimaryContainer.Environment is added per worker.
INHERITED_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TMPDIR",
        "TZ",
        "LD_LIBRARY_PATH",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
    }
)
INHERITED_PREFIXES = ("AWS_", "MODELDROP_", "PIP_")


def container_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if key in INHERITED_VARIABLES or key.startswith(INHERITED_PREFIXES)
    }


def describe_exit(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by signal {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit code {os.WEXITSTATUS(status)}"


class ForkServer:
    """The launcher's handle on one zygote process. Thread-safe."""

    def __init__(self, preload: str, python: str = sys.executable, label: str | None = None) -> None:
        """python: the interpreter of a pinned image environment (image_envs.py), else this one."""
        self.preload = preload
        self.label = label or preload
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**container_environment(os.environ), **THREAD_ENV}
        # The worker code and the one module of the layer it imports (modeldrop.frameworks, standard
        # library only) come from the source tree, so a pinned environment needs no copy of either.
        local_root = str(Path(__file__).resolve().parents[3])
        layer_root = str(Path(modeldrop.frameworks.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [local_root, layer_root, env.get("PYTHONPATH", "")]))
        if python != sys.executable:  # what `pip` and `python` mean to model code in that environment
            env_dir = str(Path(python).parent.parent)
            env["VIRTUAL_ENV"] = env_dir
            env["PATH"] = os.pathsep.join(filter(None, [str(Path(python).parent), env.get("PATH", "")]))
        self.process = subprocess.Popen(
            [
                python,
                "-c",
                BOOTSTRAP,
                str(Path(__file__).resolve().parents[1]),
                "--fd",
                str(theirs.fileno()),
                "--preload",
                preload,
            ],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self._sock = ours
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._seq = 0
        self._closed = False
        self.ready: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, name=f"zygote-{self.label}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self._sock.recv(MAX_MESSAGE)
            except OSError:
                message = b""
            with self._changed:
                if not message:
                    self._closed = True
                    self._changed.notify_all()
                    return
                event = json.loads(message)
                if event["type"] == "exit":
                    self._exits[event["pid"]] = event["status"]
                elif event["type"] == "ready":
                    self.ready = event
                else:
                    self._replies[event["seq"]] = event
                self._changed.notify_all()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.ready is not None or self._closed, timeout_s):
                raise WorkerStartError(f"the {self.label} fork server did not start within {timeout_s} s")
            if self.ready is None:
                raise WorkerStartError(f"the {self.label} fork server exited while importing its libraries")

    def alive(self) -> bool:
        return not self._closed and self.process.poll() is None

    def fork(self, config: Mapping[str, Any], channel_fd: int, log_fd: int, timeout_s: float = 30.0) -> int:
        with self._lock:
            self._seq += 1
            seq = self._seq
            payload = json.dumps({"type": "fork", "seq": seq, "config": config}).encode()
            socket.send_fds(self._sock, [payload], [channel_fd, log_fd])
        with self._changed:
            if not self._changed.wait_for(lambda: seq in self._replies or self._closed, timeout_s):
                raise WorkerStartError(f"the {self.label} fork server did not fork within {timeout_s} s")
            if seq not in self._replies:
                raise WorkerStartError(f"the {self.label} fork server exited")
            return int(self._replies.pop(seq)["pid"])

    def exit_status(self, pid: int, timeout_s: float = 0.0) -> int | None:
        """The wait status of a child once it exited (waiting up to timeout_s), else None."""
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or self._closed, timeout_s)
            return self._exits.get(pid)

    def has_exited(self, pid: int) -> bool:
        with self._changed:
            return pid in self._exits or self._closed

    def close(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(OSError):  # already shut down by the other end
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    main()
