"""S3 → Lambda notifications: read from the template, recorded on the buckets, delivered by the edge.

moto records a bucket's notification configuration, but its own delivery targets its Lambda backend,
which holds no function here. So the edge watches every successful S3 object write and sends S3's
event document (message structure 2.1) to each subscribed function in the functions host, after the
write, the way S3 does.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import boto3

if TYPE_CHECKING:  # stack.py reads the notifications with this module: no import at run time
    from modeldrop_local.template import Resolver


@dataclass(frozen=True)
class S3Notification:
    """An S3 event source of a function: which objects of which bucket invoke it."""

    bucket: str
    events: tuple[str, ...]
    prefix: str
    suffix: str
    function: str
    function_arn: str
    configuration_id: str

    def matches(self, bucket: str, key: str, event_name: str) -> bool:
        """event_name like `s3:ObjectCreated:Put`; patterns like `s3:ObjectCreated:*`."""
        if bucket != self.bucket or not key.startswith(self.prefix) or not key.endswith(self.suffix):
            return False
        return any(re.fullmatch(re.escape(p).replace(r"\*", ".*"), event_name) for p in self.events)


@dataclass(frozen=True)
class ObjectWrite:
    """An S3 request that creates an object, as S3 names it in the event."""

    bucket: str
    key: str
    event_name: str  # e.g. ObjectCreated:Put


def function_notifications(
    resolver: Resolver, logical_id: str, resource: dict[str, Any]
) -> list[S3Notification]:
    """The `Type: S3` events of one AWS::Serverless::Function, resolved."""
    notifications = []
    for event_id, event in resource.get("Properties", {}).get("Events", {}).items():
        if event.get("Type") != "S3":
            continue
        properties = event["Properties"]
        events = properties["Events"]
        rules = {
            rule["Name"].lower(): str(rule["Value"])
            for rule in properties.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        }
        notifications.append(
            S3Notification(
                bucket=str(resolver.resolve(properties["Bucket"])),
                events=tuple(events if isinstance(events, list) else [events]),
                prefix=rules.get("prefix", ""),
                suffix=rules.get("suffix", ""),
                function=resolver.refs[logical_id],
                function_arn=resolver.attributes[(logical_id, "Arn")],
                configuration_id=f"{resolver.refs['AWS::StackName']}-{event_id}",
            )
        )
    return notifications


def record_on_buckets(s3: Any, notifications: Iterable[S3Notification]) -> None:
    """Record the notifications on the buckets too, so GetBucketNotificationConfiguration shows them."""
    by_bucket: dict[str, list[dict[str, Any]]] = {}
    for notification in notifications:
        rules = [
            {"Name": name, "Value": value}
            for name, value in (("prefix", notification.prefix), ("suffix", notification.suffix))
            if value
        ]
        configuration: dict[str, Any] = {
            "Id": notification.configuration_id,
            "LambdaFunctionArn": notification.function_arn,
            "Events": list(notification.events),
        }
        if rules:
            configuration["Filter"] = {"Key": {"FilterRules": rules}}
        by_bucket.setdefault(notification.bucket, []).append(configuration)
    for bucket, configurations in by_bucket.items():
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": configurations}
        )


def object_write(environ: dict[str, Any]) -> ObjectWrite | None:
    """The object a request writes when it is an S3 PutObject/CopyObject/CompleteMultipartUpload."""
    if "/s3/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
        return None
    method = environ["REQUEST_METHOD"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    host = environ.get("HTTP_HOST", "").split(":", 1)[0]
    path = unquote(environ.get("PATH_INFO", ""))
    if host and not re.fullmatch(r"[\d.]+|localhost|s3[.-].*amazonaws\.com", host) and "." in host:
        bucket, key = host.split(".", 1)[0], path.lstrip("/")
    else:
        bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        return None
    if method == "PUT" and "partNumber" not in query and not (set(query) - {"x-id"}):
        copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
        return ObjectWrite(bucket, key, "ObjectCreated:Copy" if copy else "ObjectCreated:Put")
    if method == "POST" and "uploadId" in query:
        return ObjectWrite(bucket, key, "ObjectCreated:CompleteMultipartUpload")
    return None


def s3_event(
    *,
    bucket: str,
    key: str,
    event_name: str,
    size: int,
    etag: str,
    version_id: str | None,
    sequencer: str,
    configuration_id: str,
    region: str,
    account_id: str,
) -> dict[str, Any]:
    """An S3 event notification exactly as S3 sends it to Lambda (event message structure 2.1)."""
    obj: dict[str, Any] = {"key": key, "size": size, "eTag": etag, "sequencer": sequencer}
    if version_id:
        obj["versionId"] = version_id
    now = datetime.now(UTC)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "eventName": event_name,
                "userIdentity": {"principalId": f"AWS:{account_id}"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                    "x-amz-id-2": "local",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": configuration_id,
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": account_id},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }


class S3Notifier:
    """Delivers the stack's notifications for the object writes the edge has seen succeed."""

    def __init__(
        self,
        notifications: list[S3Notification],
        invoke: Callable[[str, bytes], Any],
        *,
        edge_url: str,
        region: str,
        account_id: str,
    ) -> None:
        self.notifications = notifications
        self._invoke = invoke
        self._edge_url = edge_url
        self._region = region
        self._account_id = account_id
        self._sequencer = itertools.count(int(time.time() * 1000))
        self.threads: list[threading.Thread] = []
        self._s3: Any = None
        self._s3_lock = threading.Lock()

    def watched_write(self, environ: dict[str, Any]) -> ObjectWrite | None:
        """The object this request writes, when some notification may be due for it."""
        return object_write(environ) if self.notifications else None

    def notify(self, write: ObjectWrite, headers: dict[str, str]) -> None:
        """Send the event to every function subscribed to this write, in a thread (S3 does not wait)."""
        event_name = f"s3:{write.event_name}"
        targets = [n for n in self.notifications if n.matches(write.bucket, write.key, event_name)]
        if not targets:
            return
        version_id = headers.get("x-amz-version-id")
        sequencer = f"{next(self._sequencer):018X}"

        def send() -> None:
            # S3 sends the notification after the write; size/eTag come from the stored object.
            head_arguments: dict[str, Any] = {"Bucket": write.bucket, "Key": write.key}
            if version_id:
                head_arguments["VersionId"] = version_id
            head = self._s3_client().head_object(**head_arguments)
            for notification in targets:
                event = s3_event(
                    bucket=write.bucket,
                    key=write.key,
                    event_name=write.event_name,
                    size=int(head["ContentLength"]),
                    etag=head["ETag"].strip('"'),
                    version_id=version_id,
                    sequencer=sequencer,
                    configuration_id=notification.configuration_id,
                    region=self._region,
                    account_id=self._account_id,
                )
                self._invoke(notification.function, json.dumps(event).encode())

        thread = threading.Thread(target=send, daemon=True, name=f"s3-notify-{write.key}")
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def _s3_client(self) -> Any:
        """One client for every notification (boto3 clients are thread-safe; making one costs ~20 ms)."""
        with self._s3_lock:
            if self._s3 is None:
                self._s3 = boto3.client(
                    "s3",
                    endpoint_url=self._edge_url,
                    region_name=self._region,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                )
            return self._s3
