"""The memory watchdog: kills a worker whose RSS passes its MemorySizeInMB.

The same cap SageMaker Serverless enforces on a container, so a greedy model fails clearly and the
host is unharmed.
"""

from __future__ import annotations

import threading

from modeldrop_local.sagemaker.worker.process import Worker

WATCHDOG_INTERVAL_S = 0.05


class MemoryWatchdog(threading.Thread):
    """Polls every worker's RSS; kills one over its MemorySizeInMB with a clear reason."""

    def __init__(self) -> None:
        super().__init__(name="worker-memory-watchdog", daemon=True)
        self._workers: set[Worker] = set()
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def watch(self, worker: Worker) -> None:
        with self._lock:
            self._workers.add(worker)

    def run(self) -> None:
        while not self._stop_event.wait(WATCHDOG_INTERVAL_S):
            with self._lock:
                workers = list(self._workers)
            for worker in workers:
                if not worker.is_alive():
                    with self._lock:
                        self._workers.discard(worker)
                    continue
                rss = worker.rss_bytes()
                cap = worker.spec.memory_mb * 2**20
                if rss > cap:
                    worker.kill(f"over memory ({rss // 2**20} MB > MemorySizeInMB {worker.spec.memory_mb})")

    def stop(self) -> None:
        self._stop_event.set()
