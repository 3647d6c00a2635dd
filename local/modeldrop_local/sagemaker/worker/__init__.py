"""Local SageMaker workers: one process per model instance, forked from per-framework fork servers.

The API the local SageMaker server codes against: WorkerLauncher starts Workers from WorkerSpecs;
Worker.invoke runs the inference-toolkit handler chain and returns a WorkerAnswer; failures raise
WorkerStartError, WorkerCrashed or WorkerTimeout.

Choices, and why:
- Cold start: a fork server per framework (fork_servers.py, on modeldrop_local.forking) holds the
  imports; a worker is a fork of it, so a cold start costs the model load (about 7 ms for the iris
  model instead of about 0.8 s).
- Channel: a Unix socket pair per worker with length-prefixed frames (protocol.py): no HTTP
  parsing, and the model's stdout/stderr (a separate pipe) can never corrupt an answer.
- Logs: the launcher copies the worker's fds 1 and 2 into WorkerSpec.log_path, each line prefixed
  with a UTC timestamp, the pid and the request id (the worker writes a marker before each
  request), so output survives a crash and C-level writes are tagged too.
- Memory: a watchdog thread polls each worker's RSS every 50 ms and kills one over MemorySizeInMB
  ("over memory (N MB > MemorySizeInMB M)"); RLIMIT_AS set generously in the worker only stops
  a single huge allocation (MemoryError, a 500) before the host feels it.
- Threads: OMP/MKL/OpenBLAS pools are held to one thread per worker (set in the fork server, before
  any native library loads), as a Serverless endpoint's small vCPU share would.
- requirements.txt: see requirements.py (cache per content hash; offline only when asked).
"""

from modeldrop_local.sagemaker.worker.launcher import WorkerLauncher
from modeldrop_local.sagemaker.worker.process import Worker
from modeldrop_local.sagemaker.worker.types import (
    WorkerAnswer,
    WorkerCrashed,
    WorkerSpec,
    WorkerStartError,
    WorkerTimeout,
)

__all__ = [
    "Worker",
    "WorkerAnswer",
    "WorkerCrashed",
    "WorkerLauncher",
    "WorkerSpec",
    "WorkerStartError",
    "WorkerTimeout",
]
