"""The WSGI face of the local SageMaker: SageMaker's wire protocols on werkzeug.

- Control plane, `json` protocol: POST / with `X-Amz-Target: SageMaker.<Operation>` and an
  application/x-amz-json-1.1 body; errors `{"__type": ..., "message": ...}`.
- Runtime, `rest-json`: POST /endpoints/{EndpointName}/invocations, the payload as the body,
  ContentType/Accept as headers; answers with Content-Type and x-Amzn-Invoked-Production-Variant.
- Extras for modeldrop's CLI: GET /_modeldrop/metrics/{endpoint}, GET /_modeldrop/logs/{endpoint}
  (?tail=N), GET /_modeldrop/health.

The app does not own its port: the local cloud's edge mounts it next to moto.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from modeldrop_local.sagemaker import errors
from modeldrop_local.sagemaker.lifecycle import Clock
from modeldrop_local.sagemaker.pool import LauncherLike
from modeldrop_local.sagemaker.service import LocalSageMaker
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings

JSON_1_1 = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."
_logger = logging.getLogger(__name__)


def is_sagemaker_request(environ: dict[str, Any]) -> bool:
    """Whether a request belongs to this app (for an edge that routes by protocol, not by port)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    path = environ.get("PATH_INFO", "")
    return (
        target.startswith(TARGET_PREFIX)
        or (path.startswith("/endpoints/") and path.endswith("/invocations"))
        or path.startswith("/_modeldrop/")
    )


class LocalSageMakerApp:
    """A WSGI callable; `.service` is the LocalSageMaker behind it; `close()` stops its workers."""

    def __init__(self, service: LocalSageMaker) -> None:
        self.service = service
        self._routes = Map(
            [
                Rule("/", methods=["POST"], endpoint="control"),
                Rule("/endpoints/<name>/invocations", methods=["POST"], endpoint="invoke"),
                Rule("/_modeldrop/health", methods=["GET"], endpoint="health"),
                Rule("/_modeldrop/metrics/<name>", methods=["GET"], endpoint="metrics"),
                Rule("/_modeldrop/logs/<name>", methods=["GET"], endpoint="logs"),
            ]
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request_id = str(uuid.uuid4())
        try:
            endpoint_name = _invocation_endpoint(environ)
            if endpoint_name is not None:  # the hot path: no route table, no Response object
                return self._invoke_direct(request, endpoint_name, request_id, start_response)
            route, args = self._routes.bind_to_environ(environ).match()
            if route == "control":
                response = self._control(request, request_id)
            elif route == "invoke":  # not reached while _invocation_endpoint matches what the rule does
                return self._invoke_direct(request, args["name"], request_id, start_response)
            elif route == "health":
                response = _json({"status": "ok", "operations": self.service.control_plane.operations})
            elif route == "metrics":
                response = _json(self.service.data_plane.metrics(args["name"]))
            else:
                tail = request.args.get("tail", type=int)
                text = self.service.data_plane.read_log(args["name"], tail)
                response = Response(text, content_type="text/plain; charset=utf-8")
        except errors.SageMakerError as error:
            response = _error(error, rest=not request.headers.get("X-Amz-Target"))
        except (NotFound, MethodNotAllowed) as error:
            response = _error(
                errors.SageMakerError(
                    "UnknownOperationException", f"{request.method} {request.path}: {error.name}", 404
                ),
                rest=True,
            )
        except HTTPException as error:  # e.g. a request werkzeug cannot parse
            response = _error(
                errors.SageMakerError("SerializationException", str(error.description), 400), rest=True
            )
        except Exception as error:  # a bug here must still answer in SageMaker's shape, and be seen
            _logger.exception("local SageMaker failed on %s %s", request.method, request.path)
            response = _error(errors.internal_failure(f"{type(error).__name__}: {error}"), rest=True)
        response.headers["x-amzn-RequestId"] = request_id
        return response(environ, start_response)

    def _control(self, request: Request, request_id: str) -> Response:
        target = request.headers.get("X-Amz-Target", "")
        if not target.startswith(TARGET_PREFIX):
            raise errors.unknown_operation(target)
        try:
            params = json.loads(request.get_data() or b"{}")
        except ValueError as error:
            raise errors.serialization(f"The request body is not valid JSON: {error}") from error
        result = self.service.control_plane.call(target[len(TARGET_PREFIX) :], params)
        return Response(json.dumps(result), content_type=JSON_1_1)

    def _invoke_direct(
        self, request: Request, name: str, request_id: str, start_response: Any
    ) -> Iterable[bytes]:
        """What `_invoke` answers, written straight to start_response (the same headers, in the same order).

        Everything that can fail runs before start_response, so errors still take __call__'s paths.
        """
        environ = request.environ
        limit = self.service.settings.max_payload_bytes
        if (request.content_length or 0) > limit:
            raise errors.runtime_validation(f"Request {request_id} has oversize body.")
        body = request.stream.read(limit + 1)
        answer = self.service.data_plane.invoke(
            name, body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"), request_id
        )
        payload = answer.result.body
        headers = [
            ("Content-Type", answer.result.content_type),
            ("Content-Length", str(len(payload))),
            ("x-Amzn-Invoked-Production-Variant", answer.variant_name),
        ]
        custom = environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES")
        if custom:
            headers.append(("X-Amzn-SageMaker-Custom-Attributes", custom))
        headers.append(("x-amzn-RequestId", request_id))
        start_response("200 OK", headers)
        return [payload]

    def close(self) -> None:
        self.service.close()


_INVOCATIONS_PREFIX, _INVOCATIONS_SUFFIX = "/endpoints/", "/invocations"


def _invocation_endpoint(environ: dict[str, Any]) -> str | None:
    """The endpoint name of `POST /endpoints/<name>/invocations`, else None (the route table decides).

    Matches exactly what the `/endpoints/<name>/invocations` rule matches: one non-empty path segment.
    """
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    path: str = environ.get("PATH_INFO", "")
    if not (path.startswith(_INVOCATIONS_PREFIX) and path.endswith(_INVOCATIONS_SUFFIX)):
        return None
    name = path[len(_INVOCATIONS_PREFIX) : -len(_INVOCATIONS_SUFFIX)]
    if not name or "/" in name:
        return None
    # PATH_INFO holds WSGI's latin-1 view of the UTF-8 bytes; the route table decodes it the same way.
    return name.encode("latin-1").decode("utf-8", "replace")


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def _error(error: errors.SageMakerError, *, rest: bool) -> Response:
    response = Response(json.dumps(error.body()), status=error.status, content_type=JSON_1_1)
    if rest:  # rest-json clients read the code from this header first
        response.headers["x-amzn-ErrorType"] = error.code
    return response


def create_app(
    settings: LocalSageMakerSettings, launcher: LauncherLike | None = None, *, clock: Clock | None = None
) -> LocalSageMakerApp:
    """The local SageMaker as a WSGI app (state in settings.state_dir; workers from `launcher`)."""
    return LocalSageMakerApp(LocalSageMaker(settings, launcher, clock=clock))
