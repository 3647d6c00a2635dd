"""The functions' logs on the `local up` console, condensed to one readable line per record."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from modeldrop_local.functions_host.emf import EmfSink

# Fields of the functions' structured logs worth a place on the console line.
_CONSOLE_FIELDS = ("model", "deployment_id", "action", "status", "reason")


def console_line(function: str, line: str) -> str | None:
    """A function's log line as the `local up` console shows it, None to leave it out.

    Powertools' JSON records become `function LEVEL message key=value…`; CloudWatch metrics (EMF
    records) and logged events (non-text messages below WARNING) stay out; anything else (prints,
    tracebacks) passes as it is.
    """
    text = line.rstrip("\n")
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return f"{function}: {text}"
    if not isinstance(record, dict) or "message" not in record:
        return None if isinstance(record, dict) and "_aws" in record else f"{function}: {text}"
    level = str(record.get("level", "INFO"))
    message = record["message"]
    if not isinstance(message, str):
        if level in ("DEBUG", "INFO"):
            return None
        message = json.dumps(message)
    details = "".join(f" {key}={record[key]}" for key in _CONSOLE_FIELDS if record.get(key) is not None)
    condensed = f"{function} {level} {message}{details}"
    if record.get("exception"):
        condensed += "\n" + str(record["exception"])
    return condensed


def copy_to_console(function: str, stream: IO[str]) -> None:
    for line in stream:
        condensed = console_line(function, line)
        if condensed is not None:
            sys.stdout.write(condensed + "\n")
            sys.stdout.flush()


@dataclass(frozen=True)
class LogDestination:
    """Where a function's log lines go: its log file (fd), else this console, condensed or as written."""

    function: str
    file_fd: int | None = None
    condensed: bool = False

    def write(self, line: str) -> None:
        if self.file_fd is not None:
            os.write(self.file_fd, line.encode("utf-8", "replace"))
            return
        text = console_line(self.function, line) if self.condensed else line.rstrip("\n")
        if text is not None:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def close(self) -> None:
        if self.file_fd is not None:
            os.close(self.file_fd)


def pump_log(stream: IO[str], sink: EmfSink, destination: LogDestination) -> None:
    """A worker's log through the metrics sink (its EMF records become metrics), then to its destination."""
    try:
        for line in stream:
            sink.offer(line)
            destination.write(line)
    finally:
        destination.close()
