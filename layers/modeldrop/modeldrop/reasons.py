"""A deployment's reason for an unexpected error: one sentence on one line; the trace goes to the logs.

A reason is read by the person who uploaded the model (GET /models/{name}, DescribeEndpoint's
FailureReason), so it says what failed and where, never with a traceback.
"""

from __future__ import annotations

import os
import traceback

REASON_DETAIL_CHARS = 240


def error_summary(error: BaseException, limit: int = REASON_DETAIL_CHARS) -> str:
    """'TypeName: the first line of its message', at most `limit` characters."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    text = f"{type(error).__name__}: {lines[0]}" if lines and lines[0] else type(error).__name__
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def raised_at(error: BaseException, prefer_under: str | None = None) -> str | None:
    """Where the error was raised: the innermost frame under `prefer_under` (the model's own code) if
    any, else the innermost one; as 'file, line N, in function'."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return None
    root = os.path.join(prefer_under, "") if prefer_under else None
    own = [frame for frame in frames if root and frame.filename.startswith(root)]
    frame = (own or frames)[-1]
    filename = frame.filename.removeprefix(root) if own and root else frame.filename
    return f"{filename}, line {frame.lineno}, in {frame.name}"
