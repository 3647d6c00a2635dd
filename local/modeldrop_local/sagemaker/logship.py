"""Ships each endpoint's log file to CloudWatch Logs, as SageMaker does with container output.

Group `/aws/sagemaker/Endpoints/<endpoint>`, stream `<variant>/local` (SageMaker: `<variant>/<instance id>`),
so a client that reads an endpoint's logs from CloudWatch (`modeldrop logs`) works the same on AWS
and on the local cloud (where the logs endpoint is moto's). Only complete lines are shipped; the
offsets shipped so far are kept in logs/.shipped.json so a restart does not ship a line twice.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from modeldrop_local.sagemaker.store import write_json_atomic

LOG_STREAM = "AllTraffic/local"
_MAX_BATCH_EVENTS = 5_000
_MAX_BATCH_BYTES = 800_000  # under PutLogEvents' 1 MiB, counting its 26 bytes per event


def log_group(endpoint: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def _timestamp_ms(line: str, fallback_ms: int) -> int:
    first = line.split(" ", 1)[0]
    try:
        return int(datetime.fromisoformat(first).timestamp() * 1000)
    except ValueError:
        return fallback_ms


class LogShipper:
    def __init__(self, logs_dir: Path, endpoint_url: str, region: str, interval_s: float = 1.0) -> None:
        self._dir = logs_dir
        self._client: Any = boto3.client("logs", endpoint_url=endpoint_url, region_name=region)
        self._interval_s = interval_s
        self._offsets_path = logs_dir / ".shipped.json"
        self._offsets: dict[str, int] = (
            json.loads(self._offsets_path.read_text()) if self._offsets_path.is_file() else {}
        )
        self._ready: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sagemaker-log-shipper", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.ship_once()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.ship_once()

    def ship_once(self) -> None:
        with self._lock:
            changed = False
            for path in sorted(self._dir.glob("*.log")):
                try:
                    changed |= self._ship_file(path)
                except (ClientError, BotoCoreError) as error:  # logs are best effort; retried next tick
                    self.last_error = f"{path.name}: {error}"
            if changed:
                write_json_atomic(self._offsets_path, self._offsets)

    def _ensure_stream(self, group: str) -> None:
        if group in self._ready:
            return
        for create, kwargs in (
            (self._client.create_log_group, {"logGroupName": group}),
            (self._client.create_log_stream, {"logGroupName": group, "logStreamName": LOG_STREAM}),
        ):
            # Already there when an earlier process on the same state created it.
            with contextlib.suppress(self._client.exceptions.ResourceAlreadyExistsException):
                create(**kwargs)
        self._ready.add(group)

    def _ship_file(self, path: Path) -> bool:
        offset = self._offsets.get(path.name, 0)
        size = path.stat().st_size
        if size < offset:  # the file was replaced (endpoint deleted and created again)
            offset = 0
        if size == offset:
            return False
        with path.open("rb") as stream:
            stream.seek(offset)
            data = stream.read(size - offset)
        complete = data.rfind(b"\n") + 1
        if complete == 0:
            return False
        now_ms = int(time.time() * 1000)
        events: list[dict[str, Any]] = [
            {"timestamp": _timestamp_ms(line, now_ms), "message": line}
            for line in data[:complete].decode("utf-8", "replace").splitlines()
            if line.strip()
        ]
        events.sort(key=lambda event: event["timestamp"])  # PutLogEvents wants chronological order
        group = log_group(path.stem)
        self._ensure_stream(group)
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        for event in events:
            size_of = len(event["message"].encode()) + 26
            if batch and (len(batch) >= _MAX_BATCH_EVENTS or batch_bytes + size_of > _MAX_BATCH_BYTES):
                self._put(group, batch)
                batch, batch_bytes = [], 0
            batch.append(event)
            batch_bytes += size_of
        if batch:
            self._put(group, batch)
        self._offsets[path.name] = offset + complete
        return True

    def _put(self, group: str, events: list[dict[str, Any]]) -> None:
        self._client.put_log_events(logGroupName=group, logStreamName=LOG_STREAM, logEvents=events)
