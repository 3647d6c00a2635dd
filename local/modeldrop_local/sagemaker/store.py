"""Persistent state of the local SageMaker: one JSON file per resource, written atomically.

Layout under state_dir: models/<name>.json, endpoint-configs/<name>.json, endpoints/<name>.json,
model-data/<endpoint>/<deployment id>/ (extracted tarballs), logs/<endpoint>.log, cache/ (workers).
A new process on the same directory reads the records back (see EndpointLifecycle.recover).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

KINDS = ("models", "endpoint-configs", "endpoints")


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class StateStore:
    """Records by kind and name, cached in memory; every change goes to disk before it returns."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir)
        self.lock = threading.RLock()
        self._records: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        for kind in KINDS:
            folder = self.root / kind
            folder.mkdir(parents=True, exist_ok=True)
            for path in sorted(folder.glob("*.json")):
                self._records[kind][path.stem] = json.loads(path.read_text())

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            record = self._records[kind].get(name)
            return json.loads(json.dumps(record)) if record is not None else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(json.dumps(record)) for record in self._records[kind].values()]

    def put(self, kind: str, name: str, record: dict[str, Any]) -> None:
        with self.lock:
            write_json_atomic(self.root / kind / f"{name}.json", record)
            self._records[kind][name] = json.loads(json.dumps(record))

    def delete(self, kind: str, name: str) -> None:
        with self.lock:
            (self.root / kind / f"{name}.json").unlink(missing_ok=True)
            self._records[kind].pop(name, None)

    def model_data_dir(self, endpoint: str, deployment_id: str) -> Path:
        return self.root / "model-data" / endpoint / deployment_id

    def log_path(self, endpoint: str) -> Path:
        return self.root / "logs" / f"{endpoint}.log"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"
