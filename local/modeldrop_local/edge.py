"""The AWS edge: one loopback port for every AWS API call of the local cloud.

Routing: the SageMaker Model Registry's operations (model packages and their groups) → moto's
SageMaker, through `model_registry.py`, which also sends their state-change events to the template's
EventBridge rules (`eventbridge.py`); the rest of the SageMaker control plane (X-Amz-Target
SageMaker.*) and runtime (/endpoints/*/invocations), as `sagemaker.app.is_sagemaker_request` tells →
the local SageMaker WSGI app; Lambda Invoke → the
functions host; CloudFormation DescribeStacks of the local stack → `cloudformation.py`; everything else
→ moto, in-process. Successful S3 object writes go to `s3_notifications.py`, which sends S3's event to
the functions the template subscribes, asynchronously.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from moto.core.config import default_user_config
from moto.core.request import (
    PRESERVED_HEADER_NAMES_ENVIRON_KEY,
    environ_key_for_header,
    should_preserve_original_header_name,
)
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.wrappers import Response

from modeldrop_local import cloudwatch_percentiles
from modeldrop_local.cloudformation import describe_stacks
from modeldrop_local.eventbridge import EventRules
from modeldrop_local.functions_host import FunctionsHost
from modeldrop_local.http_server import WSGIServer
from modeldrop_local.model_registry import ModelRegistry, registry_operation
from modeldrop_local.s3_notifications import S3Notifier
from modeldrop_local.sagemaker.app import is_sagemaker_request
from modeldrop_local.service_quotas import install as install_sagemaker_quotas
from modeldrop_local.stack import LocalStack

logger = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_LAMBDA_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


def configure_moto(port: int) -> Callable[[], None]:
    """moto's Step Functions engine runs the real ASL and calls back to MOTO_PORT: make that the edge.

    Returns the function that puts the previous settings back (moto's config is process-wide, and a
    transient cloud or a test process must not leave it changed).
    """
    previous_env = {key: os.environ.get(key) for key in ("MOTO_PORT", "MOTO_CALL_RESET_API")}
    previous_sfn = dict(default_user_config.get("stepfunctions", {}))
    os.environ["MOTO_PORT"] = str(port)
    os.environ.setdefault("MOTO_CALL_RESET_API", "false")
    default_user_config["stepfunctions"] = {"execute_state_machine": True}

    def restore() -> None:
        for key, value in previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        default_user_config["stepfunctions"] = previous_sfn  # type: ignore[typeddict-item]

    return restore


class _BackendCachingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves a host.

    moto looks the backend up on every request (a listing of its own package folders, then one regex
    per service, under a lock that every request shares): about 0.6 ms of each DynamoDB GetItem on the
    REST path. The answer depends on the host string alone (moto's URL patterns are fixed at import).
    """

    _MAX_HOSTS = 1024  # virtual-hosted S3 puts bucket names in the host: keep the memo bounded

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._backend_by_host: dict[str, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host is None:
            return None
        if host in self._backend_by_host:
            return self._backend_by_host[host]
        backend = super().get_backend_for_host(host)
        if len(self._backend_by_host) >= self._MAX_HOSTS:
            self._backend_by_host.clear()
        self._backend_by_host[host] = backend
        return backend


class EdgeApp:
    """The WSGI application behind the edge port."""

    def __init__(self, sagemaker_app: WSGIApp | None = None) -> None:
        # SageMaker's serverless quotas for OnUpload's preflight (moto's Service Quotas has only VPC's).
        install_sagemaker_quotas()
        # p99 and the other percentiles for GetMetricData (moto computes only the basic statistics).
        cloudwatch_percentiles.install()
        self.moto_app: WSGIApp = _BackendCachingDispatcher()
        self.sagemaker_app = sagemaker_app
        self.functions: FunctionsHost | None = None
        self.stack: LocalStack | None = None
        self.notifier: S3Notifier | None = None
        self.model_registry = ModelRegistry(self._moto)
        self._dynamodb_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        lambda_match = _LAMBDA_INVOKE.match(environ.get("PATH_INFO", ""))
        if lambda_match and environ["REQUEST_METHOD"] == "POST":
            return self._lambda_invoke(environ, unquote(lambda_match["name"]))(environ, start_response)
        if registry_operation(environ) is not None:
            return self.model_registry(environ, start_response)
        # Without a local SageMaker app, moto's SageMaker answers (records only, serves nothing).
        if self.sagemaker_app is not None and is_sagemaker_request(environ):
            return self.sagemaker_app(environ, start_response)
        if self.stack is not None and environ["REQUEST_METHOD"] == "POST" and _is_form(environ):
            form = parse_qs(_read_body(environ).decode("utf-8", "replace"))
            stack_answer = describe_stacks(self.stack, form)
            if stack_answer is not None:
                return stack_answer(environ, start_response)
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            # DynamoDB applies each item write atomically; moto checks the condition, stores the bare
            # key, then applies the update, so a concurrent reader sees a key-only item and two
            # conditional writers can both pass. One DynamoDB call at a time gives back the atomicity.
            with self._dynamodb_lock:
                return self._moto(environ, start_response)
        return self._moto(environ, start_response)

    def _moto(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        captured: dict[str, Any] = {}
        early_writes: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status
            captured["headers"] = headers
            return early_writes.append

        # moto raising on a request (or answering Flask's HTML error page) means a path or body it
        # cannot parse, i.e. the client's fault: 400 in the addressed service's shape, never a 500.
        try:
            answer = self.moto_app(environ, capture)
        except Exception as error:
            logger.info(
                "moto could not handle %s %s: %r", environ["REQUEST_METHOD"], environ["PATH_INFO"], error
            )
            return _malformed(environ)(environ, start_response)
        status = str(captured.get("status", "500 Internal Server Error"))
        headers = list(captured.get("headers", []))
        if _is_unhandled_error(status, headers):
            close = getattr(answer, "close", None)
            if close is not None:
                close()
            return _malformed(environ)(environ, start_response)
        start_response(status, headers)
        write = self.notifier.watched_write(environ) if self.notifier is not None else None
        if write is None:
            return [*early_writes, *answer] if early_writes else answer
        body = b"".join([*early_writes, *answer])
        if status.startswith("200") and self.notifier is not None:
            self.notifier.notify(write, dict(headers))
        return [body]

    def _lambda_invoke(self, environ: dict[str, Any], name: str) -> Response:
        if self.functions is None:
            return _json_error(503, "ServiceException", "the functions host is not running")
        payload = _read_body(environ)
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        try:
            spec = self.functions.spec(name)
        except KeyError:
            return _json_error(
                404, "ResourceNotFoundException", f"Function not found: arn:aws:lambda:function:{name}"
            )
        if invocation_type == "Event":
            self.functions.invoke_async(spec.name, payload)
            return Response(b"", status=202, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        if invocation_type == "DryRun":
            return Response(b"", status=204)
        result = self.functions.invoke(spec.name, payload)
        headers = {"x-amzn-RequestId": result.request_id, "X-Amz-Executed-Version": "$LATEST"}
        if result.function_error:
            headers["X-Amz-Function-Error"] = "Unhandled"
        return Response(result.payload, status=200, headers=headers, content_type="application/json")


def _is_unhandled_error(status: str, headers: list[tuple[str, str]]) -> bool:
    """moto's own errors carry the service's error body; an exception inside it gives Flask's HTML 500."""
    if not status.startswith("500"):
        return False
    content_type = next((value for name, value in headers if name.lower() == "content-type"), "")
    return content_type.startswith("text/html")


_SIGNED_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/(?P<service>[^/]+)/aws4_request")


def _malformed(environ: dict[str, Any]) -> Response:
    """400 for a request the addressed service cannot understand, in that service's error shape."""
    method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    signed = _SIGNED_SERVICE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    service = signed["service"] if signed else ""
    message = f"The request {method} {path[:200]} is not one {service or 'the edge'} understands."
    if target:  # the JSON protocols (DynamoDB, Step Functions, SageMaker, ...)
        return _json_error(400, "SerializationException", message)
    if service in ("s3", ""):  # the REST-XML protocol; an unsigned request is taken as S3's, as moto does
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidRequest</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
        )
        return Response(body, status=400, content_type="application/xml")
    return Response(message, status=400, content_type="text/plain")


def _is_form(environ: dict[str, Any]) -> bool:
    return str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded")


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so the next app can read it again."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def _json_error(status: int, error_type: str, message: str) -> Response:
    return Response(
        json.dumps({"__type": error_type, "message": message, "Message": message}),
        status=status,
        headers={"x-amzn-ErrorType": error_type},
        content_type="application/json",
    )


class Edge:
    """The edge server on 127.0.0.1:port, in a background thread of this process."""

    def __init__(self, port: int, sagemaker_app: WSGIApp | None = None) -> None:
        # A transient cloud (e.g. `local invoke`) hands MOTO_PORT back to the one it interrupted.
        self._restore_moto = configure_moto(port)
        self.app = EdgeApp(sagemaker_app)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        # S3 PUTs of model tarballs come through here: S3's 5 GiB single-PUT limit, not a payload's 4 MB.
        self._server = WSGIServer(
            "127.0.0.1",
            port,
            self.app,
            max_body_bytes=5 << 30,
            environ_hook=keep_moto_header_names,
            name="edge",
        )

    def start(self) -> None:
        self._server.start()

    def attach(self, stack: LocalStack, functions: FunctionsHost) -> None:
        self.app.stack = stack
        self.app.functions = functions
        self.app.notifier = S3Notifier(
            stack.notifications,
            functions.invoke,
            edge_url=self.url,
            region=stack.region,
            account_id=str(stack.resolver.refs["AWS::AccountId"]),
        )
        self.app.model_registry.rules = EventRules(stack.event_rules, functions.invoke)

    def stop(self) -> None:
        self._server.stop()
        self._restore_moto()


def keep_moto_header_names(environ: dict[str, Any], headers: list[tuple[str, str]]) -> None:
    """Like moto's own server: S3 metadata headers keep their underscores (x-amz-meta-a_b).

    WSGI folds `-` and `_` together, so the HTTP server drops underscored names; moto reads the
    original spelling of the ones it preserves from one environ key.
    """
    dashed = {environ_key_for_header(name) for name, _ in headers if "_" not in name}
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in headers:
        if not should_preserve_original_header_name(name):
            continue
        key = environ_key_for_header(name)
        if key in dashed:  # never let an underscored header stand in for a dashed one
            continue
        names.setdefault(key, name)
        values.setdefault(key, []).append(value)
    for key, key_values in values.items():
        environ[key] = ",".join(key_values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names
