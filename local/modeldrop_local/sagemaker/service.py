"""The local SageMaker: control-plane operations, the endpoint lifecycle, and InvokeEndpoint.

An endpoint record holds `Deployed` (the snapshot being served) and `Pending` (the snapshot a
Create/UpdateEndpoint is bringing up). A background thread per deployment downloads ModelDataUrl
from S3, extracts it with the checks OnUpload uses (modeldrop.tarball.safe_extract), loads the model
once in a worker (launcher.prepare) and starts the ProvisionedConcurrency workers; only then does
it switch the endpoint's pool. A failed update leaves the old deployment serving, InService, with
the FailureReason set; a failed create is Failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from modeldrop.tarball import TarballRejected, safe_extract

from modeldrop_local.sagemaker import errors
from modeldrop_local.sagemaker.logship import LogShipper
from modeldrop_local.sagemaker.metrics import EndpointMetrics
from modeldrop_local.sagemaker.pool import (
    Deployment,
    LauncherLike,
    PoolClosed,
    ServerlessPool,
    Throttled,
)
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings
from modeldrop_local.sagemaker.store import StateStore
from modeldrop_local.sagemaker.validation import validate_request, validate_serverless_variants
from modeldrop_local.sagemaker.worker import (
    InvocationResult,
    WorkerCrashed,
    WorkerLauncher,
    WorkerStartError,
    WorkerTimeout,
)
from modeldrop_local.sagemaker.worker.profiles import PING_FAILED, SUBMIT_DIRECTORY_ENV

MODELS, CONFIGS, ENDPOINTS = "models", "endpoint-configs", "endpoints"
_ARN_KIND = {MODELS: "model", CONFIGS: "endpoint-config", ENDPOINTS: "endpoint"}
_NOUN = {MODELS: "model", CONFIGS: "endpoint configuration", ENDPOINTS: "endpoint"}
_NAME_KEY = {MODELS: "ModelName", CONFIGS: "EndpointConfigName", ENDPOINTS: "EndpointName"}
_ARN_KEY = {MODELS: "ModelArn", CONFIGS: "EndpointConfigArn", ENDPOINTS: "EndpointArn"}
BUSY_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
MAX_TAGS = 50
WARM_RETRY_S = 5.0  # a provisioned worker that failed to start is retried after this long


class DeploymentFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InvokeAnswer:
    result: InvocationResult
    variant_name: str


def _now() -> float:
    return time.time()


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class LocalSageMaker:
    """One local SageMaker (one account, one region). Thread-safe; `close()` stops every worker."""

    def __init__(self, settings: LocalSageMakerSettings, launcher: LauncherLike | None = None) -> None:
        self.settings = settings
        self.store = StateStore(settings.state_dir)
        self.launcher: LauncherLike = launcher or WorkerLauncher(self.store.cache_dir)
        self._pools: dict[str, ServerlessPool] = {}
        self._metrics: dict[str, EndpointMetrics] = {}
        self._threads: set[threading.Thread] = set()
        # Endpoints whose record says Deleting. With a pool and no entry here, an endpoint is servable,
        # so InvokeEndpoint skips the copy of its record (StateStore.get) on the hot path.
        self._deleting: set[str] = set()
        self._stopping = threading.Event()
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "DeleteModel": self.delete_model,
            "ListModels": self.list_models,
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "DeleteEndpointConfig": self.delete_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "DeleteEndpoint": self.delete_endpoint,
            "ListEndpoints": self.list_endpoints,
            "UpdateEndpoint": self.update_endpoint,
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
        }
        self._shipper: LogShipper | None = None
        if settings.cloudwatch_logs_endpoint_url:
            logs_dir = self.store.root / "logs"
            logs_dir.mkdir(parents=True, exist_ok=True)
            self._shipper = LogShipper(
                logs_dir, settings.cloudwatch_logs_endpoint_url, settings.region, settings.log_ship_interval_s
            )
            self._shipper.start()
        self._recover()
        self._reaper = threading.Thread(target=self._reap_forever, name="sagemaker-reaper", daemon=True)
        self._reaper.start()

    # ------------------------------------------------------------------------------ plumbing

    @property
    def operations(self) -> list[str]:
        return sorted(self._operations)

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run a control-plane operation (validated against botocore's model); raises SageMakerError."""
        handler = self._operations.get(operation)
        if handler is None:
            raise errors.unknown_operation(f"SageMaker.{operation}")
        validate_request(operation, params)
        return handler(params)

    def arn(self, kind: str, name: str) -> str:
        # SageMaker lower-cases resource names in ARNs.
        region, account = self.settings.region, self.settings.account_id
        return f"arn:aws:sagemaker:{region}:{account}:{_ARN_KIND[kind]}/{name.lower()}"

    def _delete_existing(self, kind: str, name: str) -> dict[str, Any]:
        """Delete a model or endpoint config, with SageMaker's error when it does not exist."""
        with self.store.lock:
            self._require(kind, name)
            self.store.delete(kind, name)
        return {}

    def _require(self, kind: str, name: str) -> dict[str, Any]:
        record = self.store.get(kind, name)
        if record is None:
            raise errors.not_found(_NOUN[kind], self.arn(kind, name))
        return record

    def _create(self, kind: str, name: str, record: dict[str, Any], tags: list[dict[str, str]]) -> str:
        with self.store.lock:
            if self.store.get(kind, name) is not None:
                raise errors.already_exists(_NOUN[kind], self.arn(kind, name))
            arn = self.arn(kind, name)
            record = {_NAME_KEY[kind]: name, _ARN_KEY[kind]: arn, "CreationTime": _now(), **record}
            record["Tags"] = self._merge_tags([], tags)
            self.store.put(kind, name, record)
        return arn

    def _list(
        self, kind: str, params: dict[str, Any], summary: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], str | None]:
        records = self.store.all(kind)
        if params.get("NameContains"):
            needle = str(params["NameContains"]).lower()
            records = [r for r in records if needle in r[_NAME_KEY[kind]].lower()]
        if params.get("StatusEquals"):
            records = [r for r in records if r.get("EndpointStatus") == params["StatusEquals"]]
        for key, keep in (
            ("CreationTimeBefore", lambda t, b: t < b),
            ("CreationTimeAfter", lambda t, b: t > b),
        ):
            if key in params:
                bound = float(params[key])
                records = [r for r in records if keep(r["CreationTime"], bound)]
        sort_by = params.get("SortBy", "CreationTime")
        sort_key = {"Name": _NAME_KEY[kind], "CreationTime": "CreationTime", "Status": "EndpointStatus"}[
            sort_by
        ]
        records.sort(key=lambda r: r[sort_key], reverse=params.get("SortOrder", "Descending") == "Descending")
        start = int(params["NextToken"]) if str(params.get("NextToken", "")).isdigit() else 0
        size = int(params.get("MaxResults", 100))
        page = records[start : start + size]
        more = str(start + size) if start + size < len(records) else None
        return [summary(record) for record in page], more

    # -------------------------------------------------------------------------------- models

    def create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        container = params.get("PrimaryContainer") or (params.get("Containers") or [None])[0]
        if container is None:
            raise errors.validation("Either PrimaryContainer or Containers must be specified.")
        record = {
            "PrimaryContainer": container,
            "ExecutionRoleArn": params.get("ExecutionRoleArn"),
            "EnableNetworkIsolation": bool(params.get("EnableNetworkIsolation", False)),
        }
        return {"ModelArn": self._create(MODELS, params["ModelName"], record, params.get("Tags", []))}

    def describe_model(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._require(MODELS, params["ModelName"])
        record.pop("Tags", None)
        return {key: value for key, value in record.items() if value is not None}

    def delete_model(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._delete_existing(MODELS, params["ModelName"])

    def list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        items, token = self._list(
            MODELS,
            params,
            lambda r: {key: r[key] for key in ("ModelName", "ModelArn", "CreationTime")},
        )
        return {"Models": items, **({"NextToken": token} if token else {})}

    # ------------------------------------------------------------------------ endpoint configs

    def create_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        variants = params["ProductionVariants"]
        validate_serverless_variants(variants)
        for variant in variants:
            self._require(MODELS, variant["ModelName"])
        record = {"ProductionVariants": variants}
        arn = self._create(CONFIGS, params["EndpointConfigName"], record, params.get("Tags", []))
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._require(CONFIGS, params["EndpointConfigName"])
        record.pop("Tags", None)
        return record

    def delete_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        # Allowed while an endpoint uses it, as on SageMaker: endpoints keep their own snapshot.
        return self._delete_existing(CONFIGS, params["EndpointConfigName"])

    def list_endpoint_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        items, token = self._list(
            CONFIGS,
            params,
            lambda r: {key: r[key] for key in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")},
        )
        return {"EndpointConfigs": items, **({"NextToken": token} if token else {})}

    # -------------------------------------------------------------------------------- endpoints

    def _snapshot(self, endpoint_name: str, config_name: str) -> Deployment:
        """Freeze what the endpoint will serve: later changes to the config or model do not affect it."""
        config = self._require(CONFIGS, config_name)
        variant = config["ProductionVariants"][0]
        model = self._require(MODELS, variant["ModelName"])
        container = model["PrimaryContainer"]
        serverless = variant["ServerlessConfig"]
        deployment_id = f"{int(_now())}-{uuid.uuid4().hex[:8]}"
        return Deployment(
            deployment_id=deployment_id,
            endpoint_config_name=config_name,
            model_name=variant["ModelName"],
            variant_name=variant["VariantName"],
            image=str(container.get("Image", "")),
            model_data_url=str(container.get("ModelDataUrl", "")),
            memory_mb=int(serverless["MemorySizeInMB"]),
            max_concurrency=int(serverless["MaxConcurrency"]),
            provisioned_concurrency=int(serverless.get("ProvisionedConcurrency") or 0),
            model_dir=self.store.model_data_dir(endpoint_name, deployment_id),
            environment=dict(container.get("Environment") or {}),
        )

    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self.store.lock:
            if self.store.get(ENDPOINTS, name) is not None:
                raise errors.already_exists("endpoint", self.arn(ENDPOINTS, name))
            count = len(self.store.all(ENDPOINTS))
            if count >= self.settings.max_endpoints:
                raise errors.resource_limit_exceeded(
                    f"The account-level service limit 'Number of endpoints' is {self.settings.max_endpoints} "
                    f"Endpoints, with current utilization of {count} Endpoints and a request delta of 1 "
                    "Endpoints. Delete an endpoint or start the local SageMaker with a higher max_endpoints."
                )
            deployment = self._snapshot(name, params["EndpointConfigName"])
            record = {
                "EndpointConfigName": deployment.endpoint_config_name,
                "EndpointStatus": "Creating",
                "LastModifiedTime": _now(),
                "Deployed": None,
                "Pending": deployment.to_record(),
                "PendingStartTime": _now(),
            }
            arn = self._create(ENDPOINTS, name, record, params.get("Tags", []))
        self._log(name, f"CreateEndpoint with config {deployment.endpoint_config_name}: Creating")
        self._start_deployment(name, deployment)
        return {"EndpointArn": arn}

    def update_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self.store.lock:
            record = self._require(ENDPOINTS, name)
            arn = record["EndpointArn"]
            if record["EndpointStatus"] in BUSY_STATUSES:
                raise errors.validation(f'Cannot update in-progress endpoint "{arn}".')
            if record["EndpointStatus"] == "Failed" or not record.get("Deployed"):
                # Worded so that callers matching "cannot update" (an in-progress endpoint) do not wait.
                raise errors.validation(
                    f'Endpoint "{arn}" is in status {record["EndpointStatus"]} and cannot be updated; '
                    "delete it and create it again."
                )
            deployment = self._snapshot(name, params["EndpointConfigName"])
            record.update(
                EndpointStatus="Updating",
                LastModifiedTime=_now(),
                Pending=deployment.to_record(),
                PendingStartTime=_now(),
            )
            record.pop("FailureReason", None)
            self.store.put(ENDPOINTS, name, record)
        self._log(name, f"UpdateEndpoint to config {deployment.endpoint_config_name}: Updating")
        self._start_deployment(name, deployment)
        return {"EndpointArn": arn}

    def describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._require(ENDPOINTS, params["EndpointName"])
        answer: dict[str, Any] = {
            key: record[key]
            for key in ("EndpointName", "EndpointArn", "EndpointConfigName", "EndpointStatus", "CreationTime")
        }
        answer["LastModifiedTime"] = record["LastModifiedTime"]
        if record.get("FailureReason"):
            answer["FailureReason"] = record["FailureReason"]
        deployed = record.get("Deployed")
        if deployed:
            answer["EndpointConfigName"] = deployed["EndpointConfigName"]
            answer["ProductionVariants"] = [self._variant_summary(deployed, record["LastModifiedTime"])]
        pending = record.get("Pending")
        if pending and deployed:
            answer["PendingDeploymentSummary"] = {
                "EndpointConfigName": pending["EndpointConfigName"],
                "ProductionVariants": [
                    {
                        "VariantName": pending["VariantName"],
                        "DesiredServerlessConfig": self._serverless_config(pending),
                    }
                ],
                "StartTime": record.get("PendingStartTime", record["LastModifiedTime"]),
            }
        return answer

    @staticmethod
    def _serverless_config(deployment: dict[str, Any]) -> dict[str, int]:
        config = {
            "MemorySizeInMB": int(deployment["MemorySizeInMB"]),
            "MaxConcurrency": int(deployment["MaxConcurrency"]),
        }
        if deployment.get("ProvisionedConcurrency"):
            config["ProvisionedConcurrency"] = int(deployment["ProvisionedConcurrency"])
        return config

    def _variant_summary(self, deployment: dict[str, Any], resolved_at: float) -> dict[str, Any]:
        serverless = self._serverless_config(deployment)
        return {
            "VariantName": deployment["VariantName"],
            "DeployedImages": [
                {
                    "SpecifiedImage": deployment["Image"],
                    "ResolvedImage": deployment["Image"],
                    "ResolutionTime": resolved_at,
                }
            ],
            "CurrentWeight": 1.0,
            "DesiredWeight": 1.0,
            "CurrentServerlessConfig": serverless,
            "DesiredServerlessConfig": serverless,
        }

    def delete_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self.store.lock:
            record = self._require(ENDPOINTS, name)
            if record["EndpointStatus"] != "Deleting":
                record.update(EndpointStatus="Deleting", LastModifiedTime=_now())
                self.store.put(ENDPOINTS, name, record)
            self._deleting.add(name)
        self._log(name, "DeleteEndpoint: Deleting")
        self._spawn(f"delete-{name}", lambda: self._finish_delete(name))
        return {}

    def list_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        keys = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
        items, token = self._list(ENDPOINTS, params, lambda r: {key: r[key] for key in keys})
        return {"Endpoints": items, **({"NextToken": token} if token else {})}

    # ------------------------------------------------------------------------------------ tags

    @staticmethod
    def _merge_tags(existing: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
        merged = {tag["Key"]: tag.get("Value", "") for tag in existing}
        merged.update({tag["Key"]: tag.get("Value", "") for tag in new})
        if len(merged) > MAX_TAGS:
            raise errors.validation(
                f"A resource can have at most {MAX_TAGS} tags; this request makes {len(merged)}."
            )
        return [{"Key": key, "Value": value} for key, value in merged.items()]

    def _find_by_arn(self, arn: str) -> tuple[str, dict[str, Any]]:
        for kind in (MODELS, CONFIGS, ENDPOINTS):
            for record in self.store.all(kind):
                if record[_ARN_KEY[kind]] == arn:
                    return kind, record
        raise errors.resource_not_found(f'Could not find resource "{arn}".')

    def add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            kind, record = self._find_by_arn(params["ResourceArn"])
            record["Tags"] = self._merge_tags(record.get("Tags", []), params["Tags"])
            self.store.put(kind, record[_NAME_KEY[kind]], record)
        return {"Tags": params["Tags"]}

    def list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        _, record = self._find_by_arn(params["ResourceArn"])
        return {"Tags": record.get("Tags", [])}

    def delete_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            kind, record = self._find_by_arn(params["ResourceArn"])
            drop = set(params["TagKeys"])
            record["Tags"] = [tag for tag in record.get("Tags", []) if tag["Key"] not in drop]
            self.store.put(kind, record[_NAME_KEY[kind]], record)
        return {}

    # ---------------------------------------------------------------------------- lifecycle

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            finally:
                self._threads.discard(thread)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.add(thread)
        thread.start()

    def _start_deployment(self, name: str, deployment: Deployment) -> None:
        self._spawn(f"deploy-{name}-{deployment.deployment_id}", lambda: self._deploy(name, deployment))

    def _download_and_extract(self, name: str, deployment: Deployment) -> None:
        url = deployment.model_data_url
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
            raise DeploymentFailed(
                "The local SageMaker downloads model data from s3://bucket/key URLs only; "
                f'ModelDataUrl is "{url}".'
            )
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
        s3 = boto3.client("s3", endpoint_url=self.settings.s3_endpoint_url, region_name=self.settings.region)
        if deployment.model_dir.exists():  # left over by an interrupted run
            shutil.rmtree(deployment.model_dir)
        self._log(name, f"downloading {url}")
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                # SageMaker extracts any archive; whether the image can serve it is the health check's call.
                report = safe_extract(body, deployment.model_dir, require_model=False)
            finally:
                body.close()
        except (ClientError, BotoCoreError) as error:
            raise DeploymentFailed(
                f'Failed to download model data for container "primary" from URL: "{url}". '
                f"Please ensure that there is an object located at the URL and that it can be read ({error})."
            ) from error
        except TarballRejected as rejected:
            raise DeploymentFailed(
                f'Failed to extract model data archive from URL "{url}". Please ensure that '
                f"the object located at the URL is a valid tar.gz archive: {rejected.reason}"
            ) from rejected
        self._log(name, f"extracted {report.member_count} files ({report.uncompressed_bytes} bytes)")

    def _fetch_source_dir(self, name: str, deployment: Deployment) -> Deployment:
        """An s3:// SAGEMAKER_SUBMIT_DIRECTORY (the SDK's sourcedir.tar.gz), downloaded and extracted.

        The scikit-learn image does the same at start (sagemaker-containers 2.8.6 _files.py
        download_and_extract, called by _modules.import_module). Extracted with the model data's safety
        checks, into a cache keyed by URL and ETag, so a redeploy of the same code downloads nothing.
        """
        url = deployment.environment.get(SUBMIT_DIRECTORY_ENV, "")
        if not url.startswith("s3://"):
            return deployment
        parsed = urlparse(url)
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
        s3 = boto3.client("s3", endpoint_url=self.settings.s3_endpoint_url, region_name=self.settings.region)
        try:
            etag = str(s3.head_object(Bucket=bucket, Key=key)["ETag"])
            folder = (
                self.store.cache_dir
                / "sourcedir"
                / hashlib.sha256(f"{url}\n{etag}".encode()).hexdigest()[:24]
            )
            if not folder.is_dir():
                staging = folder.with_name(f"{folder.name}.{uuid.uuid4().hex[:8]}.partial")
                body = s3.get_object(Bucket=bucket, Key=key)["Body"]
                try:
                    safe_extract(body, staging, require_model=False)
                finally:
                    body.close()
                try:
                    staging.rename(folder)
                except OSError:  # another deployment of the same code got there first
                    shutil.rmtree(staging, ignore_errors=True)
        except (ClientError, BotoCoreError) as error:
            raise DeploymentFailed(
                f'Failed to download the source directory {SUBMIT_DIRECTORY_ENV}="{url}": {error}'
            ) from error
        except TarballRejected as rejected:
            raise DeploymentFailed(
                f'The source directory {SUBMIT_DIRECTORY_ENV}="{url}" is not a safe tar.gz archive: '
                f"{rejected.reason}"
            ) from rejected
        self._log(name, f"source directory {url} (ETag {etag}) at {folder}")
        return dataclasses.replace(deployment, source_dir=folder)

    def _deploy(self, name: str, deployment: Deployment) -> None:
        pool: ServerlessPool | None = None
        reason: str | None = None
        started = time.monotonic()
        try:
            self._download_and_extract(name, deployment)
            deployment = self._fetch_source_dir(name, deployment)
            pool = self._new_pool(name, deployment)
            self.launcher.prepare(pool.spec)
            pool.warm()
        except DeploymentFailed as failure:
            reason = failure.reason
        except WorkerStartError as error:
            # SageMaker's own FailureReason, then what its CloudWatch logs would have shown.
            reason = f"{PING_FAILED.format(variant=deployment.variant_name)} Local SageMaker: {error.reason}"
        except Exception as error:  # an unforeseen failure must still end Creating/Updating, with its cause
            reason = (
                f"Internal error while deploying: {type(error).__name__}: {_tail(traceback.format_exc(), 6)}"
            )
        if self._stopping.is_set():  # shutting down: leave Pending for the next process to resume
            if pool is not None:
                pool.close()
            return
        retired: tuple[ServerlessPool | None, Path | None] = (None, None)
        with self.store.lock:
            record = self.store.get(ENDPOINTS, name)
            current = (record or {}).get("Pending") or {}
            if (
                record is None
                or record["EndpointStatus"] == "Deleting"
                or (current.get("DeploymentId") != deployment.deployment_id)
            ):
                retired = (pool, deployment.model_dir)  # superseded or deleted meanwhile
                reason = reason or "superseded by a later UpdateEndpoint or DeleteEndpoint"
            elif reason is None:
                assert pool is not None
                previous = record.get("Deployed")
                retired = (
                    self._pools.get(name),
                    Path(previous["ModelDir"]) if previous else None,
                )
                self._pools[name] = pool
                record.update(
                    EndpointStatus="InService",
                    EndpointConfigName=deployment.endpoint_config_name,
                    Deployed=deployment.to_record(),
                    Pending=None,
                    LastModifiedTime=_now(),
                )
                record.pop("FailureReason", None)
                self.store.put(ENDPOINTS, name, record)
            else:
                retired = (pool, deployment.model_dir)
                rolled_back = bool(record.get("Deployed"))
                record.update(
                    EndpointStatus="InService" if rolled_back else "Failed",
                    FailureReason=reason,
                    Pending=None,
                    LastModifiedTime=_now(),
                )
                if rolled_back:
                    record["EndpointConfigName"] = record["Deployed"]["EndpointConfigName"]
                self.store.put(ENDPOINTS, name, record)
        old_pool, old_dir = retired
        if old_pool is not None:
            old_pool.close()
        if old_dir is not None:
            shutil.rmtree(old_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # the endpoint's folder, once its last deployment is gone
                old_dir.parent.rmdir()
        elapsed = time.monotonic() - started
        if reason is None:
            self._log(name, f"InService on {deployment.endpoint_config_name} after {elapsed:.2f} s")
        else:
            self._log(name, f"deployment of {deployment.endpoint_config_name} failed: {reason}")

    def _new_pool(self, name: str, deployment: Deployment) -> ServerlessPool:
        return ServerlessPool(
            name,
            deployment,
            self.launcher,
            self.metrics_for(name),
            log_path=self.store.log_path(name),
            idle_timeout_s=self.settings.idle_timeout_s,
            startup_timeout_s=self.settings.startup_timeout_s,
        )

    def _finish_delete(self, name: str) -> None:
        with self.store.lock:
            pool = self._pools.pop(name, None)
        if pool is not None:
            pool.close()
        shutil.rmtree(self.store.root / "model-data" / name, ignore_errors=True)
        with self.store.lock:
            record = self.store.get(ENDPOINTS, name)
            if record is not None and record["EndpointStatus"] == "Deleting":
                self.store.delete(ENDPOINTS, name)
                self._deleting.discard(name)
                self._metrics.pop(name, None)
        self._log(name, "deleted")

    def _recover(self) -> None:
        """Bring back what a previous process on the same state_dir left: serve, resume, or finish."""
        for record in self.store.all(ENDPOINTS):
            name = record["EndpointName"]
            if record["EndpointStatus"] == "Deleting":
                self._deleting.add(name)
                self._spawn(f"delete-{name}", functools.partial(self._finish_delete, name))
                continue
            deployed = record.get("Deployed")
            if deployed and Path(deployed["ModelDir"]).is_dir():
                pool = self._new_pool(name, Deployment.from_record(deployed))
                self._pools[name] = pool
                if pool.deployment.provisioned_concurrency:
                    self._spawn(f"warm-{name}", functools.partial(self._warm, pool))
            elif deployed:  # its files are gone: deploy the same snapshot again
                record.update(Deployed=None, Pending=deployed, EndpointStatus="Creating")
                self.store.put(ENDPOINTS, name, record)
            pending = record.get("Pending")
            if pending:
                self._log(name, f"resuming the deployment of {pending['EndpointConfigName']} after a restart")
                self._start_deployment(name, Deployment.from_record(pending))

    def _warm(self, pool: ServerlessPool) -> None:
        try:
            pool.warm()
        except WorkerStartError as error:
            pool.last_warm_failure = time.monotonic()
            self._log(pool.endpoint_name, f"provisioned worker failed to start: {error.reason}")

    def _reap_forever(self) -> None:
        while not self._stopping.wait(self.settings.reaper_interval_s):
            for pool in list(self._pools.values()):
                stopped = pool.reap()
                if stopped:
                    self._log(pool.endpoint_name, f"scaled in: stopped {stopped} idle worker(s)")
                failed_at = pool.last_warm_failure
                backing_off = failed_at is not None and time.monotonic() - failed_at < WARM_RETRY_S
                if not backing_off and pool.stats()["provisioned"] < pool.deployment.provisioned_concurrency:
                    self._warm(pool)

    # ------------------------------------------------------------------------------- runtime

    def metrics_for(self, name: str) -> EndpointMetrics:
        with self.store.lock:
            metrics = self._metrics.get(name)
            if metrics is None:
                metrics = self._metrics[name] = EndpointMetrics(name)
            return metrics

    def metrics(self, name: str) -> dict[str, Any]:
        """The metrics snapshot of one endpoint, plus its pool's worker counts."""
        self._runtime_record(name)
        snapshot = self.metrics_for(name).snapshot()
        pool = self._pools.get(name)
        snapshot["Workers"] = pool.stats() if pool else {"busy": 0, "idle": 0, "workers": 0, "provisioned": 0}
        return snapshot

    def pool(self, name: str) -> ServerlessPool | None:
        return self._pools.get(name)

    def _not_found(self, name: str) -> errors.SageMakerError:
        return errors.runtime_validation(f"Endpoint {name} of account {self.settings.account_id} not found.")

    def _runtime_record(self, name: str) -> dict[str, Any]:
        record = self.store.get(ENDPOINTS, name)
        if record is None or record["EndpointStatus"] == "Deleting":
            raise self._not_found(name)
        return record

    def invoke(
        self, name: str, body: bytes, content_type: str | None, accept: str | None, request_id: str
    ) -> InvokeAnswer:
        """InvokeEndpoint; raises SageMakerError with the runtime's codes."""
        pool = self._pools.get(name)
        record: dict[str, Any] | None = None
        if pool is None or name in self._deleting:
            # A pool is only ever held for an endpoint whose record exists (it is dropped before the
            # record is), so only these cases need the record: unknown, deleting, or still creating.
            record = self._runtime_record(name)
            pool = self._pools.get(name)
        if len(body) > self.settings.max_payload_bytes:
            raise errors.runtime_validation(f"Request {request_id} has oversize body.")
        if pool is None:
            if record is not None and record["EndpointStatus"] == "Creating":
                raise errors.model_not_ready(
                    f"Endpoint {name} is still being created: its serverless capacity is being provisioned."
                )
            raise self._not_found(name)
        metrics = self.metrics_for(name)
        started = time.perf_counter()
        try:
            try:
                result = pool.invoke(
                    body,
                    content_type or "",
                    accept or "",
                    request_id,
                    self.settings.invocation_timeout_s,
                )
            except PoolClosed:  # an update switched pools between the lookup and the call
                pool = self._pools.get(name) or pool
                result = pool.invoke(
                    body,
                    content_type or "",
                    accept or "",
                    request_id,
                    self.settings.invocation_timeout_s,
                )
        except PoolClosed as closed:
            raise self._not_found(name) from closed
        except Throttled as throttled:
            raise errors.throttled(
                f"Endpoint {name} is at its MaxConcurrency ({pool.deployment.max_concurrency}); "
                "the request was throttled."
            ) from throttled
        except WorkerStartError as error:
            metrics.record("Invocation5XXErrors")
            self._log(name, f"[{request_id}] cold start failed: {error.reason}")
            raise errors.service_unavailable(
                f"A worker for endpoint {name} could not start: {error.reason}"
            ) from error
        except WorkerTimeout as timeout:
            metrics.record("Invocations")
            metrics.record("Invocation5XXErrors")
            self._log(name, f"[{request_id}] timed out: {timeout}")
            raise errors.model_timeout(
                endpoint=name, region=self.settings.region, account=self.settings.account_id
            ) from timeout
        except WorkerCrashed as crash:
            metrics.record("Invocations")
            metrics.record("Invocation5XXErrors")
            self._log(name, f"[{request_id}] worker crashed: {crash}")
            raise errors.model_error(
                status=500,
                message=f"The model server crashed while handling the request: {crash}",
                endpoint=name,
                region=self.settings.region,
                account=self.settings.account_id,
            ) from crash
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

    # -------------------------------------------------------------------------------- logs

    def log_path(self, name: str) -> Path:
        return self.store.log_path(name)

    def _log(self, name: str, message: str) -> None:
        path = self.store.log_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as stream:
            stream.write(f"{_timestamp()} [sagemaker] {message}\n".encode())

    def read_log(self, name: str, tail_lines: int | None = None) -> str:
        """The endpoint's log (control-plane events and worker output with request ids)."""
        path = self.store.log_path(name)
        if not path.is_file():
            if self.store.get(ENDPOINTS, name) is None:
                raise self._not_found(name)
            return ""
        text = path.read_text(errors="replace")
        if tail_lines is not None:
            text = "".join(text.splitlines(keepends=True)[-tail_lines:])
        return text

    # ------------------------------------------------------------------------------ shutdown

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait for background deployments and deletions (tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop the reaper and every worker. The state on disk stays for the next process."""
        self._stopping.set()
        self._reaper.join(timeout=5)
        with self.store.lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()
        self.launcher.close()
        if self._shipper is not None:
            self._shipper.stop()
