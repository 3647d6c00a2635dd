"""Lambda's runtime inside a worker process: the handler imported once, then one invocation at a time.

Requests arrive as JSON lines on stdin, answers leave as JSON lines on the reply pipe (ready,
init_error, ok, error), and stdout/stderr stay the function's prints and logs, as on Lambda. Every
worker imports this module: the standard library only, to keep its cold start light.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Mapping
from typing import IO, Any


def error_payload(error_type: str, message: str, stack: list[str] | None = None) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": stack or []}).encode()


class LambdaContext:
    """The attributes and method handlers read from Lambda's context object."""

    def __init__(self, spec: Mapping[str, Any], request_id: str, deadline: float) -> None:
        self.aws_request_id = request_id
        self.function_name = spec["name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec["arn"]
        self.memory_limit_in_mb = spec["memory_mb"]
        self.log_group_name = f"/aws/lambda/{spec['name']}"
        self.log_stream_name = f"local/{os.getpid()}"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def serve_invocations(requests: IO[str], replies: IO[str], spec: dict[str, Any]) -> None:
    """Child process: become the function's sandbox, then answer invocations until stdin closes."""

    def reply(kind: str, body: bytes) -> None:
        replies.write(json.dumps({"kind": kind, "body": body.decode("utf-8", "replace")}) + "\n")
        replies.flush()

    os.environ.update(spec["environment"])
    for path in reversed([spec["code_dir"], *spec["layer_dirs"]]):
        sys.path.insert(0, path)
    module_name, _, function_name = spec["handler"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as error:  # an import failure is Lambda's Runtime.ImportModuleError, for every request
        reply(
            "init_error",
            error_payload("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}"),
        )
        return
    reply("ready", b"")
    for line in requests:
        request = json.loads(line)
        context = LambdaContext(spec, request["id"], request["deadline"])
        try:
            event = json.loads(request["payload"]) if request["payload"] else {}
            result = handler(event, context)
            answer = ("ok", json.dumps(result).encode())
        except Exception as error:  # the function's own failure is the invocation's answer, as on Lambda
            stack = traceback.format_tb(error.__traceback__)
            answer = ("error", error_payload(type(error).__name__, str(error), stack))
        sys.stdout.flush()
        sys.stderr.flush()
        reply(*answer)
