"""The endpoint registry: every record, and the endpoints that are ready to serve, under one lock.

The one piece of state the control plane, the lifecycle and the data plane share (KServe's
ModelRepository, kserve/kserve python/kserve/kserve/model_repository.py, plays this part there):
typed tables of models, endpoint configs and endpoints over the state directory, the serving pool
of each endpoint that has one (an endpoint with a pool and not Deleting is servable, so InvokeEndpoint
needs no record on its hot path), the endpoints' metrics, and their log files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from modeldrop_local.sagemaker import errors
from modeldrop_local.sagemaker.metrics import EndpointMetrics
from modeldrop_local.sagemaker.pool import ServerlessPool
from modeldrop_local.sagemaker.records import EndpointConfigRecord, EndpointRecord, ModelRecord, Resource
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings
from modeldrop_local.sagemaker.store import StateStore

R = TypeVar("R", bound=Resource)


class Table(Generic[R]):
    """The records of one kind, typed; each change is on disk before it returns (StateStore)."""

    def __init__(self, store: StateStore, record_type: type[R], arn_prefix: str) -> None:
        self._store = store
        self.record_type = record_type
        self._arn_prefix = arn_prefix

    def arn(self, name: str) -> str:
        # SageMaker lower-cases resource names in ARNs.
        return f"{self._arn_prefix}{self.record_type.arn_kind}/{name.lower()}"

    def get(self, name: str) -> R | None:
        """A copy of the record: changing it changes nothing until `put`."""
        data = self._store.get(self.record_type.folder, name)
        return None if data is None else self.record_type.model_validate(data)

    def require(self, name: str) -> R:
        """The record, or SageMaker's ValidationException "Could not find <noun> <arn>"."""
        record = self.get(name)
        if record is None:
            raise errors.not_found(self.record_type.noun, self.arn(name))
        return record

    def all(self) -> list[R]:
        return [self.record_type.model_validate(data) for data in self._store.all(self.record_type.folder)]

    def put(self, record: R) -> None:
        self._store.put(self.record_type.folder, record.name, record.to_json())

    def delete(self, name: str) -> None:
        self._store.delete(self.record_type.folder, name)


class EndpointLog:
    """One log file per endpoint: control-plane events, and worker output with request ids."""

    def __init__(self, path_of: Callable[[str], Path]) -> None:
        self.path_of = path_of

    def write(self, name: str, message: str) -> None:
        path = self.path_of(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with path.open("ab") as stream:
            stream.write(f"{stamp} [sagemaker] {message}\n".encode())

    def read(self, name: str, tail_lines: int | None = None) -> str | None:
        """The log's text (its last `tail_lines` lines), or None when nothing was logged yet."""
        path = self.path_of(name)
        if not path.is_file():
            return None
        text = path.read_text(errors="replace")
        if tail_lines is not None:
            text = "".join(text.splitlines(keepends=True)[-tail_lines:])
        return text


class EndpointRegistry:
    """Thread-safe through `lock` (the store's): hold it to read and change records and pools together."""

    def __init__(self, settings: LocalSageMakerSettings) -> None:
        self.settings = settings
        self.store = StateStore(settings.state_dir)
        self.lock: threading.RLock = self.store.lock
        arn_prefix = f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:"
        self.models = Table(self.store, ModelRecord, arn_prefix)
        self.configs = Table(self.store, EndpointConfigRecord, arn_prefix)
        self.endpoints = Table(self.store, EndpointRecord, arn_prefix)
        self.log = EndpointLog(self.store.log_path)
        self.pools: dict[str, ServerlessPool] = {}
        # Endpoints whose record says Deleting. With a pool and no entry here, an endpoint is servable.
        self.deleting: set[str] = set()
        self._metrics: dict[str, EndpointMetrics] = {}

    def metrics_for(self, name: str) -> EndpointMetrics:
        with self.lock:
            metrics = self._metrics.get(name)
            if metrics is None:
                metrics = self._metrics[name] = EndpointMetrics(name)
            return metrics

    def forget(self, name: str) -> None:
        """Drop what is kept of a deleted endpoint besides its record (called with the lock held)."""
        self.deleting.discard(name)
        self._metrics.pop(name, None)

    def find_by_arn(self, arn: str) -> Resource:
        for table in (self.models, self.configs, self.endpoints):
            for record in table.all():
                if record.arn == arn:
                    return record
        raise errors.resource_not_found(f'Could not find resource "{arn}".')

    def save(self, record: Resource) -> None:
        """Write a record of any kind (e.g. one found by ARN) back to its table."""
        self.store.put(record.folder, record.name, record.to_json())
