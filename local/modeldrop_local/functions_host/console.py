"""The functions' logs on the `local up` console, condensed to one readable line per record."""

from __future__ import annotations

import json
import sys
from typing import IO

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
