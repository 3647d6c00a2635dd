"""The functions' fork server: what it imports and how a forked process becomes a function worker.

One FunctionsForkServer per functions host (the fork server of modeldrop_local.forking, started on
first use or ahead by the caller) has the libraries every function imports loaded, so a cold start
imports only the function's own code. Its workers stay in the host's process group and outlive it:
each ends when the host closes its requests pipe, as a spawned worker does (worker.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modeldrop_local.forking.client import ForkServer
from modeldrop_local.functions_host.runtime import serve_invocations

# The directory modeldrop_local is imported from (local/ in a checkout).
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]

# Libraries every function of the template imports: the fork server imports them once, so a new worker
# is a fork with them loaded (milliseconds) instead of a fresh interpreter importing them again (~0.3 s
# of CPU each on a quiet machine, 1-2 s when several workers start at once on 2 cores; aws_xray_sdk and
# boto3 are most of it). Only third-party libraries, which read no function setting when imported; the
# function's own code and its layers (Powertools objects built from the function's environment) are
# imported in the worker, after its environment is set, as before.
PRELOADED_MODULES = (
    "boto3",
    "boto3.dynamodb.conditions",
    "boto3.s3.transfer",
    "botocore.client",
    "pydantic",
    "aws_xray_sdk.core",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.parser.models",
    "aws_lambda_powertools.utilities.typing",
)
# AWS services whose API descriptions the fork server loads into boto3's default session (the one
# `boto3.client(...)` uses): the services the edge serves. A worker's first client then skips reading
# and parsing those JSON files (~0.4 s of CPU for an OnUpload worker). Only the descriptions are
# loaded: region, credentials and endpoint are resolved when the function creates its clients, from
# its own environment, as before.
PRELOADED_SERVICE_MODELS = (
    "s3",
    "dynamodb",
    "stepfunctions",
    "sagemaker",
    "sagemaker-runtime",
    "service-quotas",
    "lambda",
    "logs",
)
# Lambda's runtime variables that are the same for every function; the fork server imports with them
# set (aws_xray_sdk's recorder checks LAMBDA_TASK_ROOT when imported), each worker then sets its own.
RUNTIME_ENVIRONMENT = {
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
    "LAMBDA_TASK_ROOT": str(_PACKAGE_PARENT),
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def child_pythonpath() -> str:
    """PYTHONPATH for the fork server or a spawned worker: modeldrop_local must import in the child,
    installed or not (pytest's pythonpath)."""
    return os.pathsep.join(filter(None, [str(_PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")]))


def load_service_models() -> None:
    """Load PRELOADED_SERVICE_MODELS into boto3's default session (the fork server's warm-up)."""
    try:
        import boto3
    except ImportError:
        return
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    botocore_session = boto3.DEFAULT_SESSION._session
    loader = botocore_session.get_component("data_loader")
    botocore_session.get_component("endpoint_resolver")
    for service in PRELOADED_SERVICE_MODELS:
        # A warm-up only: a service this botocore does not know is left to load (and fail) on use.
        with contextlib.suppress(Exception):
            botocore_session.get_service_model(service)
            loader.load_service_model(service, "endpoint-rule-set-1")
            if service in boto3.DEFAULT_SESSION.get_available_resources():
                loader.load_service_model(service, "resources-1")


def become_worker(request: Mapping[str, Any], fds: list[int]) -> None:
    """In a forked worker: take the host's pipes as stdin (requests), the reply pipe and stdout/stderr
    (its log), the function's environment, then serve like a spawned worker (`serve_invocations`)."""
    requests_fd, replies_fd, *log_fd = fds
    os.dup2(requests_fd, 0)
    os.close(requests_fd)
    if log_fd:
        os.dup2(log_fd[0], 1)
        os.dup2(log_fd[0], 2)
        os.close(log_fd[0])
    os.environ.clear()
    os.environ.update(request["environment"])
    with os.fdopen(replies_fd, "w") as replies:
        serve_invocations(sys.stdin, replies, request["spec"])
    sys.stdout.flush()
    sys.stderr.flush()


class FunctionsForkServer(ForkServer):
    """The fork server of one functions host: PRELOADED_MODULES imported, the service models loaded."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        server_environment = dict(os.environ)
        server_environment.update(environment)
        server_environment.update(RUNTIME_ENVIRONMENT)
        server_environment["PYTHONPATH"] = child_pythonpath()
        super().__init__(
            "functions",
            f"{__name__}:become_worker",
            environment=server_environment,
            preload=PRELOADED_MODULES,
            warm_up=f"{__name__}:load_service_models",
        )

    def fork_worker(self, environment: Mapping[str, str], spec: Mapping[str, Any], fds: list[int]) -> int:
        """A new worker's pid; waits while the server is still importing. Raises OSError if it is gone."""
        return self.fork({"environment": dict(environment), "spec": dict(spec)}, fds, timeout_s=None)
