"""The log pump: copies a worker's stdout/stderr into its log, each line tagged with time, pid and request.

The worker writes a marker (child.py) before each request and after it; the pump switches the request
id it tags lines with at each marker, however the pipe splits the stream.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from modeldrop_local.sagemaker.worker.child import IDLE_ID, MARKER_PREFIX, MARKER_SUFFIX

LOG_TAIL_LINES = 8  # the worker's last lines, quoted when it dies


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
