"""The REST front: HTTP → API Gateway REST proxy event → the API function → HTTP.

Routes, binary media types and the API-key requirement come from the API's OpenAPI definition
(the template's DefinitionBody), so the local front answers the same paths API Gateway would.

Why the proxy event is built here and not by SAM CLI's `sam local start-api` builder
(samcli.local.apigw.event_constructor.construct_v1_event, aws-sam-cli 1.170.0):
- its binary rule is `request_mimetype in binary_types or "*/*" in binary_types`
  (_should_base64_encode): no media ranges, so with this API's `image/*` an image body would travel
  as text; API Gateway matches the range (modeldrop.content_types.is_binary here);
- it passes no request id or time to RequestContext, whose defaults (`request_id=str(uuid.uuid4())`,
  `request_time_epoch`, `request_time`) are evaluated once, at import: every event would carry the
  same requestId, which the Api function returns in each error body;
- it needs a request routed by Flask (`flask_request.endpoint`, `view_args` for the resource and the
  path parameters), where this front routes by the OpenAPI paths;
- it decodes a text body with strict UTF-8 (`request_data.decode("utf-8")`), so a body that is not
  UTF-8 would raise instead of reaching the function.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modeldrop.content_types import accept_list, is_binary
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from modeldrop_local.functions_host import InvokeResult
from modeldrop_local.http_server import WSGIServer
from modeldrop_local.stack import ACCOUNT_ID, RestApiSpec

Invoke = Callable[[str, bytes], InvokeResult]
API_GATEWAY_MAX_BODY_BYTES = 10 << 20  # REST API payload quota
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@dataclass(frozen=True)
class Route:
    resource: str  # the OpenAPI path, e.g. /models/{name}/invocations
    method: str
    function: str  # the Lambda function ARN of the aws_proxy integration
    needs_api_key: bool
    pattern: re.Pattern[str]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return None if found is None else found.groupdict()


def routes_from_openapi(definition: dict[str, Any]) -> list[Route]:
    """One route per OpenAPI operation with an aws_proxy integration."""
    routes = []
    for resource, operations in definition.get("paths", {}).items():
        for method, operation in operations.items():
            if method.lower() not in _METHODS and method != "x-amazon-apigateway-any-method":
                continue
            integration = operation.get("x-amazon-apigateway-integration", {})
            uri = str(integration.get("uri", ""))
            match = re.search(r"/functions/(?P<arn>.+)/invocations$", uri)
            if integration.get("type") != "aws_proxy" or match is None:
                continue
            security = operation.get("security", definition.get("security", []))
            needs_key = any("api_key" in requirement for requirement in security or [])
            pattern = re.compile(
                re.sub(
                    r"\\\{(\w+)(\\\+)?\\\}",
                    lambda m: f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)",
                    re.escape(resource),
                )
            )
            any_method = method == "x-amazon-apigateway-any-method"
            routes.append(
                Route(resource, "ANY" if any_method else method.upper(), match["arn"], needs_key, pattern)
            )
    return routes


class RestFrontApp:
    """WSGI app turning requests into API Gateway REST proxy events (payload format 1.0)."""

    def __init__(self, api: RestApiSpec, invoke: Invoke) -> None:
        self.api = api
        self.invoke = invoke
        self.routes = routes_from_openapi(api.definition)
        self.binary_media_types = tuple(
            str(t) for t in api.definition.get("x-amazon-apigateway-binary-media-types", [])
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path
        stage_prefix = f"/{self.api.stage}"
        if path == stage_prefix or path.startswith(stage_prefix + "/"):
            path = path[len(stage_prefix) :] or "/"
        candidates = [(route, route.match(path)) for route in self.routes]
        matching = [(route, params) for route, params in candidates if params is not None]
        if not matching:
            return _message(403, "Missing Authentication Token")
        chosen = next(((r, p) for r, p in matching if r.method in (request.method, "ANY")), None)
        if chosen is None:
            return _message(403, "Missing Authentication Token")
        route, path_parameters = chosen
        key_required = route.needs_api_key and self.api.api_key_value is not None
        if key_required and request.headers.get("x-api-key") != self.api.api_key_value:
            return _message(403, "Forbidden")
        event = self.proxy_event(request, route, path, path_parameters)
        result = self.invoke(route.function, json.dumps(event).encode())
        if result.function_error:
            return _message(502, "Internal server error")
        return self.http_response(result.payload, request)

    def _is_binary(self, content_type: str | None) -> bool:
        """The Api function's own rule (modeldrop.api.media_types), over this API's binaryMediaTypes."""
        return is_binary(content_type, self.binary_media_types)

    def proxy_event(
        self, request: Request, route: Route, path: str, path_parameters: dict[str, str]
    ) -> dict[str, Any]:
        body_bytes = request.get_data()
        binary = self._is_binary(request.content_type)
        if not body_bytes:
            body: str | None = None
        elif binary:
            body = base64.b64encode(body_bytes).decode()
        else:
            body = body_bytes.decode("utf-8", "replace")
        # werkzeug reads each header from the WSGI environ again on every pass: read them once.
        header_items = list(request.headers.items())
        headers = dict(header_items)
        multi_headers: dict[str, list[str]] = {}
        lowercase: dict[str, str] = {}
        for name, value in header_items:
            multi_headers.setdefault(name, []).append(value)
            lowercase.setdefault(name.lower(), value)
        query_lists = list(request.args.lists()) if request.environ.get("QUERY_STRING") else []
        query = {key: values[-1] for key, values in query_lists}
        multi_query = {key: list(values) for key, values in query_lists}
        now = datetime.now(UTC)
        request_id = str(uuid.uuid4())
        api_key = lowercase.get("x-api-key")
        return {
            "resource": route.resource,
            "path": path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "local",
                "resourcePath": route.resource,
                "httpMethod": request.method,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": f"/{self.api.stage}{path}",
                "accountId": ACCOUNT_ID,
                "protocol": "HTTP/1.1",
                "stage": self.api.stage,
                "domainPrefix": "localhost",
                "requestTimeEpoch": int(time.time() * 1000),
                "requestId": request_id,
                "identity": {
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": lowercase.get("user-agent"),
                    "apiKey": api_key,
                    "apiKeyId": None,
                    "accessKey": None,
                    "accountId": None,
                    "caller": None,
                    "user": None,
                    "userArn": None,
                    "cognitoIdentityId": None,
                    "cognitoIdentityPoolId": None,
                    "cognitoAuthenticationProvider": None,
                    "cognitoAuthenticationType": None,
                },
                "domainName": request.host,
                "apiId": self.api.logical_id.lower(),
            },
            "body": body,
            "isBase64Encoded": binary and body is not None,
        }

    def http_response(self, payload: bytes, request: Request) -> Response:
        try:
            proxy = json.loads(payload)
            status = int(proxy.get("statusCode", 200))
        except (ValueError, AttributeError, TypeError):
            return _message(502, "Internal server error")
        headers = Headers()
        for name, value in (proxy.get("headers") or {}).items():
            headers[name] = str(value)
        for name, values in (proxy.get("multiValueHeaders") or {}).items():
            headers.remove(name)
            for value in values:
                headers.add(name, str(value))
        body = proxy.get("body") or ""
        # API Gateway decodes a base64 body only when Accept (or the content type) is a binary media type.
        accept = request.headers.get("Accept", "")
        wants_binary = any(self._is_binary(item.essence) for item in accept_list(accept)) or self._is_binary(
            headers.get("Content-Type")
        )
        data = base64.b64decode(body) if proxy.get("isBase64Encoded") and wants_binary else str(body).encode()
        return Response(data, status=status, headers=headers)


def _message(status: int, message: str) -> Response:
    return Response(
        json.dumps({"message": message}),
        status=status,
        content_type="application/json",
        headers={
            "x-amzn-ErrorType": "ForbiddenException" if status == 403 else "InternalServerErrorException"
        },
    )


class RestFront:
    """The REST front server on 127.0.0.1:port, in a background thread."""

    def __init__(self, port: int, api: RestApiSpec, invoke: Invoke) -> None:
        self.app = RestFrontApp(api, invoke)
        self.port = port
        self.url = f"http://127.0.0.1:{port}/{api.stage}"
        # API Gateway refuses a body over 10 MB with 413 before any integration runs; up to that the
        # Api function answers (413 past SageMaker's 4 MB).
        self._server = WSGIServer(
            "127.0.0.1", port, self.app, max_body_bytes=(10 << 20) + 1, name="rest-front"
        )

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
