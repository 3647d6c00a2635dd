"""Local SageMaker workers: one process per model instance, forked from per-framework fork servers.

The API the local SageMaker server codes against (prompts/worker_api.md): WorkerLauncher starts
Workers from WorkerSpecs; Worker.invoke runs the inference-toolkit handler chain and returns an
InvocationResult; failures raise WorkerStartError, WorkerCrashed or WorkerTimeout.
"""

from modeldrop_local.sagemaker.worker.launcher import Worker, WorkerLauncher
from modeldrop_local.sagemaker.worker.types import (
    InvocationResult,
    WorkerCrashed,
    WorkerSpec,
    WorkerStartError,
    WorkerTimeout,
)

__all__ = [
    "InvocationResult",
    "Worker",
    "WorkerCrashed",
    "WorkerLauncher",
    "WorkerSpec",
    "WorkerStartError",
    "WorkerTimeout",
]
