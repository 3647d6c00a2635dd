"""A short-lived cache of servable model records, per warm Api container, for the invocation path.

Every POST /models/{name}/invocations needs the model's endpoint name; reading it from DynamoDB costs
a GetItem per request (a few ms on the local cloud, a network round trip on AWS). The endpoint name of
a model never changes (`modeldrop.naming.endpoint_name`: UpdateEndpoint keeps it across versions and
rollbacks), so a warm container may keep a servable record for a few seconds. What it must not do is
keep a model alive that is gone:

- only servable records are kept; an unknown model, one not (yet) in service, or a failed read is
  asked of the table on every request, so a 404 or 503 is always the table's current answer;
- an entry lives `ttl_s` seconds at most, then the table is read again;
- when SageMaker answers that the endpoint is not available, `forget` drops the entry so the caller
  is answered from the table at once (`modeldrop.api.logic.invoke_model`).

With the record, an entry holds the model's routing (`modeldrop.guardrails.routing.Routing`: the live
endpoint, a canary's or shadow's candidate endpoint, its weight, the strategy), built once when the
record is read, so a bake's routing changes reach a warm container within `ttl_s` as well.

The reads that show records to the caller (GET /models, GET /models/{name}) do not use this cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from modeldrop.api.records_reader import ModelRecordsReader
from modeldrop.guardrails.routing import Routing
from modeldrop.records import Deployment, ModelItem

# Long enough that a busy model reads its record a few times a minute at most, short enough that a
# change made behind the pipeline's back (a record edited or removed by hand) shows within seconds.
DEFAULT_TTL_S = 5.0
# Bounded like any per-container cache: a warm container may see many models over its life.
MAX_ENTRIES = 1024


class CachedModelRecords:
    """`ModelRecordsReader` whose `get_model` keeps servable records for `ttl_s` seconds."""

    def __init__(
        self,
        reader: ModelRecordsReader,
        is_servable: Callable[[ModelItem], bool],
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._is_servable = is_servable
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, ModelItem, Routing]] = {}
        self._lock = threading.Lock()

    def get_model(self, name: str) -> ModelItem | None:
        return self.get_routed(name)[0]

    def get_routed(self, name: str) -> tuple[ModelItem | None, Routing | None]:
        """The model's record and its routing (None when there is no servable record)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(name)
        if entry is not None and now < entry[0]:
            return entry[1], entry[2]
        model = self._reader.get_model(name)
        servable = model is not None and self._is_servable(model)
        routing = Routing.of(model) if model is not None and servable else None
        with self._lock:
            if model is not None and routing is not None and self._ttl_s > 0:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.pop(next(iter(self._entries)))
                self._entries[name] = (now + self._ttl_s, model, routing)
            else:
                self._entries.pop(name, None)
        return model, routing

    def is_cached(self, name: str) -> bool:
        with self._lock:
            entry = self._entries.get(name)
        return entry is not None and self._clock() < entry[0]

    def forget(self, name: str) -> bool:
        """Drop the entry of `name`; True if there was one (the caller acted on a cached record)."""
        with self._lock:
            return self._entries.pop(name, None) is not None

    def list_deployments(self, model_name: str, limit: int = 20) -> list[Deployment]:
        return self._reader.list_deployments(model_name, limit)

    def all_models(self) -> list[tuple[ModelItem | None, Deployment | None]]:
        return self._reader.all_models()
