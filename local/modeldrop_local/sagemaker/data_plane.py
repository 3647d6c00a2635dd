"""The data plane: InvokeEndpoint, and the metrics and logs of the endpoints it serves.

KServe's DataPlane (kserve/kserve python/kserve/kserve/protocol/dataplane.py) has the same place:
it finds the model in the repository, refuses one that is not ready, and calls it. Here the call is
the endpoint's ServerlessPool, and each pool or worker failure becomes the error SageMaker's runtime
answers for it, counted in the endpoint's metrics and written to its log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from modeldrop_local.sagemaker import errors
from modeldrop_local.sagemaker.pool import MaxConcurrencyReached, PoolClosed
from modeldrop_local.sagemaker.records import EndpointRecord
from modeldrop_local.sagemaker.registry import EndpointRegistry
from modeldrop_local.sagemaker.worker import WorkerAnswer, WorkerCrashed, WorkerStartError, WorkerTimeout


@dataclass(frozen=True)
class InvokeAnswer:
    result: WorkerAnswer
    variant_name: str


class DataPlane:
    def __init__(self, registry: EndpointRegistry) -> None:
        self.registry = registry
        self.settings = registry.settings

    def _not_found(self, name: str) -> errors.SageMakerError:
        return errors.runtime_validation(f"Endpoint {name} of account {self.settings.account_id} not found.")

    def _servable_record(self, name: str) -> EndpointRecord:
        record = self.registry.endpoints.get(name)
        if record is None or record.endpoint_status == "Deleting":
            raise self._not_found(name)
        return record

    def invoke(
        self, name: str, body: bytes, content_type: str | None, accept: str | None, request_id: str
    ) -> InvokeAnswer:
        """InvokeEndpoint; raises SageMakerError with the runtime's codes."""
        pool = self.registry.pools.get(name)
        record: EndpointRecord | None = None
        if pool is None or name in self.registry.deleting:
            # A pool is only ever held for an endpoint whose record exists (it is dropped before the
            # record is), so only these cases need the record: unknown, deleting, or still creating.
            record = self._servable_record(name)
            pool = self.registry.pools.get(name)
        if len(body) > self.settings.max_payload_bytes:
            raise errors.runtime_validation(f"Request {request_id} has oversize body.")
        if pool is None:
            if record is not None and record.endpoint_status == "Creating":
                raise errors.model_not_ready(
                    f"Endpoint {name} is still being created: its serverless capacity is being provisioned."
                )
            raise self._not_found(name)
        metrics = self.registry.metrics_for(name)
        request = (body, content_type or "", accept or "", request_id, self.settings.invocation_timeout_s)
        started = time.perf_counter()
        try:
            try:
                result = pool.invoke(*request)
            except PoolClosed:  # an update switched pools between the lookup and the call
                pool = self.registry.pools.get(name) or pool
                result = pool.invoke(*request)
        except PoolClosed as closed:
            raise self._not_found(name) from closed
        except MaxConcurrencyReached as throttled:
            raise errors.throttled(
                f"Endpoint {name} is at its MaxConcurrency ({pool.deployment.max_concurrency}); "
                "the request was throttled."
            ) from throttled
        except (WorkerStartError, WorkerTimeout, WorkerCrashed) as error:
            raise self._worker_failure(name, request_id, error) from error
        total_us = (time.perf_counter() - started) * 1e6
        metrics.record("Invocations")
        metrics.record("ModelLatency", result.model_latency_us)
        metrics.record("OverheadLatency", max(0.0, total_us - result.model_latency_us))
        if result.status >= 400:
            metrics.record("Invocation4XXErrors" if result.status < 500 else "Invocation5XXErrors")
            raise errors.model_error(
                status=result.status,
                message=result.body.decode("utf-8", "replace"),
                endpoint=name,
                region=self.settings.region,
                account=self.settings.account_id,
            )
        return InvokeAnswer(result=result, variant_name=pool.deployment.variant_name)

    def _worker_failure(
        self, name: str, request_id: str, error: WorkerStartError | WorkerTimeout | WorkerCrashed
    ) -> errors.SageMakerError:
        """The runtime's error for a worker that failed the request, counted and logged."""
        metrics = self.registry.metrics_for(name)
        region, account = self.settings.region, self.settings.account_id
        if isinstance(error, WorkerStartError):  # no model saw the request: not an invocation
            metrics.record("Invocation5XXErrors")
            self.registry.log.write(name, f"[{request_id}] cold start failed: {error.reason}")
            return errors.service_unavailable(f"A worker for endpoint {name} could not start: {error.reason}")
        metrics.record("Invocations")
        metrics.record("Invocation5XXErrors")
        if isinstance(error, WorkerTimeout):
            self.registry.log.write(name, f"[{request_id}] timed out: {error}")
            return errors.model_timeout(endpoint=name, region=region, account=account)
        self.registry.log.write(name, f"[{request_id}] worker crashed: {error}")
        return errors.model_error(
            status=500,
            message=f"The model server crashed while handling the request: {error}",
            endpoint=name,
            region=region,
            account=account,
        )

    def metrics(self, name: str) -> dict[str, Any]:
        """The metrics snapshot of one endpoint, plus its pool's worker counts."""
        self._servable_record(name)
        snapshot = self.registry.metrics_for(name).snapshot()
        pool = self.registry.pools.get(name)
        snapshot["Workers"] = pool.stats() if pool else {"busy": 0, "idle": 0, "workers": 0, "provisioned": 0}
        return snapshot

    def read_log(self, name: str, tail_lines: int | None = None) -> str:
        """The endpoint's log (control-plane events and worker output with request ids)."""
        text = self.registry.log.read(name, tail_lines)
        if text is None:
            if self.registry.endpoints.get(name) is None:
                raise self._not_found(name)
            return ""
        return text
