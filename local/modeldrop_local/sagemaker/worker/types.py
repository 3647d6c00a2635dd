"""The worker API shared with the local SageMaker server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class WorkerSpec:
    """Everything needed to start one worker for one SageMaker model."""

    model_dir: Path  # the extracted tarball (artifacts at root, optional code/inference.py)
    image: str  # PrimaryContainer.Image of the SageMaker model: a framework hint
    environment: Mapping[str, str]  # PrimaryContainer.Environment, exported to the worker
    memory_mb: int  # ServerlessConfig.MemorySizeInMB: the worker's memory cap
    log_path: Path  # stdout/stderr appended here, each line prefixed with a timestamp and the request id
    startup_timeout_s: float = 180.0
    # An s3:// SAGEMAKER_SUBMIT_DIRECTORY (the SDK's sourcedir.tar.gz), downloaded and extracted.
    source_dir: Path | None = None


@dataclass(frozen=True)
class WorkerAnswer:
    """One answer of a worker: the handler's status, body and content type."""

    status: int  # 200 on success; the handler's original status on error (400, 415, 500, ...)
    body: bytes  # response body (or the error message, utf-8, on error)
    content_type: str
    model_latency_us: int  # time spent in the handler chain (input_fn..output_fn)
    # Per stage, in milliseconds: "input", "predict", "output" (or "transform" for transform_fn).
    timings_ms: Mapping[str, float] = field(default_factory=dict)


class WorkerStartError(Exception):
    """The model cannot be served; .reason says why, for the endpoint's FailureReason (one line).

    .log_detail is what the endpoint's log gets besides (a tool's whole output), if anything.
    """

    def __init__(self, reason: str, log_detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_detail = log_detail


class WorkerCrashed(Exception):
    """The worker died during a request (crash, over memory); it is gone."""


class WorkerTimeout(Exception):
    """The request exceeded its timeout; the worker was killed."""
