"""A deployed modeldrop stack as its users reach it: the Outputs, the models bucket and the REST API.

Everything after the upload goes through the REST API (openapi/api.yaml, the public contract) with
the stack's API key, so on AWS the CLI needs CloudFormation DescribeStacks, the API key's value and
s3:PutObject on the bucket, and no DynamoDB rights. On the local cloud the same calls go to the edge
and the REST front.
"""

from __future__ import annotations

import functools
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import boto3
import httpx
from botocore.exceptions import ClientError, EndpointConnectionError
from modeldrop.api.models import DeploymentSummary, ModelDetail, ModelList, RolloutView
from modeldrop.deployments_table import DeploymentRecords

from modeldrop_local.credentials import FAKE_CREDENTIALS, credentials_configured, is_loopback
from modeldrop_local.stack import DEFAULT_REGION, DEFAULT_STACK_NAME

FINAL_STATUSES = frozenset({"InService", "Failed", "Rejected", "TimedOut", "Superseded", "Unhealthy"})
# Where an upload's deployment rests until someone acts: "approval": "manual" waits for an approval.
RESTING_STATUSES = FINAL_STATUSES | {"PendingApproval"}


class StackNotFound(Exception):
    pass


class RestApiError(Exception):
    """The REST API answered an error; the message is its own (`error: message`)."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status_code = status_code
        self.code = code


class StackClient:
    """The deployed stack, reached through its Outputs (read once: they do not change under a client)."""

    def __init__(self, endpoint_url: str | None, stack_name: str = DEFAULT_STACK_NAME) -> None:
        self.endpoint_url = endpoint_url
        self.stack_name = stack_name
        self._edge_checked = False

    @functools.cached_property
    def session(self) -> boto3.Session:
        """boto3 as configured; against a loopback edge, fake credentials and the local region when unset."""
        arguments: dict[str, str] = {}
        if is_loopback(self.endpoint_url):
            if not credentials_configured():
                arguments["aws_access_key_id"] = FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]
                arguments["aws_secret_access_key"] = FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
            if boto3.Session().region_name is None:
                arguments["region_name"] = DEFAULT_REGION
        return boto3.Session(**arguments)  # type: ignore[arg-type]

    def client(self, service: str) -> Any:
        self._check_local_edge()
        return self.session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def _check_local_edge(self) -> None:
        """Nothing on a loopback edge is known at once: skip botocore's retries (seconds of backoff)."""
        if self._edge_checked or not is_loopback(self.endpoint_url):
            return
        address = urlparse(str(self.endpoint_url))
        try:
            socket.create_connection((address.hostname, address.port or 80), timeout=5).close()
        except ConnectionRefusedError as error:
            raise EndpointConnectionError(endpoint_url=str(self.endpoint_url)) from error
        self._edge_checked = True

    @functools.cached_property
    def _outputs(self) -> dict[str, str]:
        client = self.client("cloudformation")
        try:
            stacks = client.describe_stacks(StackName=self.stack_name)["Stacks"]
        except ClientError as error:
            if "does not exist" not in str(error):
                raise
            raise StackNotFound(self.stack_name) from error
        return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}

    def outputs(self) -> dict[str, str]:
        return dict(self._outputs)

    @functools.cached_property
    def _api_key(self) -> str | None:
        key_id = self._outputs.get("ApiKeyId")
        if not key_id:
            return None
        return str(self.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"])

    def api_key(self) -> str | None:
        return self._api_key

    def records(self) -> DeploymentRecords:
        """The DeploymentsTable itself, for tests and benchmarks that watch what the API does not
        show (execution ARNs, timings of a record). No command of the CLI reads it."""
        table_name = self._outputs["DeploymentsTableName"]
        resource = self.session.resource("dynamodb", endpoint_url=self.endpoint_url)
        return DeploymentRecords(resource.Table(table_name))

    @functools.cached_property
    def _http(self) -> httpx.Client:
        # One client: the follow loop polls the API every half second over one kept-alive connection.
        return httpx.Client()

    def upload(self, tarball: Path, model_name: str) -> str | None:
        """Put the tarball at models/<name>/model.tar.gz; returns the S3 object version."""
        bucket = self._outputs["ModelsBucketName"]
        with tarball.open("rb") as body:
            response = self.client("s3").put_object(
                Bucket=bucket, Key=f"models/{model_name}/model.tar.gz", Body=body
            )
        version = response.get("VersionId")
        return str(version) if version else None

    # ---------------------------------------------------------------- the REST API
    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
        timeout_s: float = 30,
    ) -> httpx.Response:
        """One call of the REST API at ApiUrl + path, with the stack's API key (none for IAM stacks)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        key = self._api_key
        if key:
            headers["x-api-key"] = key
        url = f"{self._outputs['ApiUrl'].rstrip('/')}{path}"
        return self._http.request(method, url, content=body, headers=headers, timeout=timeout_s)

    def _answer(self, response: httpx.Response, expected: int = 200) -> Any:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != expected or not isinstance(answer, dict):
            error = answer if isinstance(answer, dict) else {}
            raise RestApiError(
                response.status_code,
                str(error.get("error", f"HTTP {response.status_code}")),
                str(error.get("message", response.text)),
            )
        return answer

    def list_models(self) -> ModelList:
        return ModelList.model_validate(self._answer(self.request("GET", "/models")))

    def describe_model(self, model_name: str) -> ModelDetail | None:
        """GET /models/{name}: the model with its newest deployments; None while it has no record."""
        response = self.request("GET", f"/models/{model_name}")
        if response.status_code == 404 and _error_code(response) == "ModelNotFound":
            return None
        return ModelDetail.model_validate(self._answer(response))

    def invoke(
        self, model_name: str, body: bytes, content_type: str, timeout_s: float = 60
    ) -> httpx.Response:
        return self.request(
            "POST",
            f"/models/{model_name}/invocations",
            body=body,
            content_type=content_type,
            timeout_s=timeout_s,
        )

    def rollback(self, model_name: str, version: int | None) -> DeploymentSummary:
        """POST /models/{name}/rollback; returns the rollback deployment the API accepted (202)."""
        body = json.dumps({} if version is None else {"version": version}).encode()
        response = self.request("POST", f"/models/{model_name}/rollback", body=body)
        return DeploymentSummary.model_validate(self._answer(response, expected=202))

    def end_bake(self, model_name: str, decision: Literal["promote", "abort"]) -> RolloutView:
        """POST /models/{name}/promote or /abort; returns the rollout the API accepted (202)."""
        response = self.request("POST", f"/models/{model_name}/{decision}")
        return RolloutView.model_validate(self._answer(response, expected=202))

    def approve(self, model_name: str, version: int, description: str | None) -> DeploymentSummary:
        """POST /models/{name}/versions/{version}/approve; the approved version as accepted (202)."""
        body = json.dumps({} if description is None else {"description": description}).encode()
        response = self.request("POST", f"/models/{model_name}/versions/{version}/approve", body=body)
        return DeploymentSummary.model_validate(self._answer(response, expected=202))

    def follow(
        self,
        model_name: str,
        object_version: str | None = None,
        *,
        version: int | None = None,
        until: frozenset[str] = RESTING_STATUSES,
        timeout_s: float = 600,
        progress: Callable[[str], None] = print,
        waiting: Callable[[str, float], None] | None = None,
        poll_s: float = 0.5,
    ) -> DeploymentSummary:
        """Poll GET /models/{name} until the deployment of that S3 object version (or that deployment
        version; else the newest) has a status in `until` (a final one, or PendingApproval), and return it.

        `progress` gets one line per change (`v2 Deploying (endpoint Creating)`); `waiting`, when
        given, gets the current line and the seconds since the start on every poll (a live display).
        """
        started = time.monotonic()
        last = None
        line = f"waiting for the deployment of {model_name} to be recorded"
        failure: RestApiError | None = None
        while (elapsed := time.monotonic() - started) < timeout_s:
            try:
                detail = self.describe_model(model_name)
            except RestApiError as error:
                if error.status_code < 500 and error.status_code != 429:
                    raise
                # A throttled or failed poll is asked again, as the AWS SDKs retry 5xx and 429; one
                # that keeps failing is reported with the timeout.
                failure = error
                time.sleep(poll_s)
                continue
            deployment = _find(detail, object_version, version) if detail is not None else None
            if detail is not None and deployment is not None:
                line = f"v{deployment.version} {deployment.status}" + (
                    f" (endpoint {detail.status})" if detail.status else ""
                )
                if deployment.reason:
                    line += f": {deployment.reason}"
                if line != last:
                    progress(line)
                    last = line
                if deployment.status in until:
                    return deployment
            if waiting is not None:
                waiting(line, elapsed)
            time.sleep(poll_s)
        what = f"v{version}" if version is not None else "the deployment"
        because = f" (the last poll failed: {failure})" if failure is not None else ""
        raise TimeoutError(f"{what} of {model_name} not final after {timeout_s:.0f} s{because}")


def _find(detail: ModelDetail, object_version: str | None, version: int | None) -> DeploymentSummary | None:
    for deployment in detail.history:  # newest first
        if object_version is not None and deployment.object_version != object_version:
            continue
        if version is not None and deployment.version != version:
            continue
        return deployment
    return None


def _error_code(response: httpx.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return str(answer.get("error")) if isinstance(answer, dict) else None
