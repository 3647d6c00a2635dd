"""The smoke test of modeldrop.json: one request sent to a new version once it is InService, before it
goes live, and the check of its answer.

    "smoke_test": {"body": [[5.1, 3.5, 1.4, 0.2]], "content_type": "application/json",
                   "expect": [0]}                       # the whole answer, compared as JSON
    "smoke_test": {"body": "5.1,3.5,1.4,0.2", "content_type": "text/csv",
                   "json_path": "$.predictions[0].score"}     # the path must exist (and, with
                                                               # "equals", hold that value)

`body` is sent as is when it is a string, else as its JSON text. Without `expect` or `json_path`, any
answer that is not an error passes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

# The subset of JSONPath a check may use: $ then .name, ['name'] / ["name"] or [index] segments.
_SEGMENT = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")
MAX_BODY_BYTES = 64 * 1024
# SageMaker allows an invocation 60 s; the status function's timeout (template.yaml) leaves room above this.
INVOKE_READ_TIMEOUT_S = 50.0
# Errors after which the same request may well succeed: the step is retried by the state machine.
_NOT_READY_CODES = frozenset(
    {"ModelNotReadyException", "ThrottlingException", "ServiceUnavailable", "InternalFailure"}
)


class SmokeTestNotReady(Exception):
    """The endpoint could not take the request yet (cold, throttled): the state machine retries the step."""


def parse_json_path(path: str) -> list[str | int]:
    """`$.a[0]['b']` → ["a", 0, "b"]; ValueError for anything outside the supported subset."""
    if not path.startswith("$"):
        raise ValueError(f"must start with '$' (got {path!r})")
    segments: list[str | int] = []
    position = 1
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            raise ValueError(
                f"unsupported at {path[position:]!r}: use $ followed by .name, ['name'] or [index] "
                f"(got {path!r})"
            )
        name, index, quoted, double_quoted = match.groups()
        segments.append(int(index) if index is not None else (name or quoted or double_quoted or ""))
        position = match.end()
    return segments


class SmokeTest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    body: JsonValue
    content_type: str = Field(default="application/json", strict=True, min_length=1, max_length=1024)
    accept: str = Field(default="application/json", strict=True, min_length=1, max_length=1024)
    expect: JsonValue = None
    json_path: str | None = Field(default=None, strict=True)
    equals: JsonValue = None

    @field_validator("body")
    @classmethod
    def _body_size(cls, value: JsonValue) -> JsonValue:
        if value is None:
            raise ValueError("must be the request to send (a string, or any JSON value sent as JSON)")
        if len(_body_bytes(value)) > MAX_BODY_BYTES:
            raise ValueError(f"must be at most {MAX_BODY_BYTES} bytes")
        return value

    @field_validator("json_path")
    @classmethod
    def _path_syntax(cls, value: str | None) -> str | None:
        if value is not None:
            parse_json_path(value)
        return value

    @model_validator(mode="after")
    def _equals_needs_a_path(self) -> SmokeTest:
        if "equals" in self.model_fields_set and self.json_path is None:
            raise ValueError("equals needs json_path (the path whose value it is compared with)")
        return self

    def request_body(self) -> bytes:
        return _body_bytes(self.body)

    def check(self, content_type: str | None, answer: bytes) -> str | None:
        """None when the answer is as expected, else why not."""
        shown = answer[:200].decode("utf-8", "replace")
        parsed: Any
        try:
            parsed = json.loads(answer)
        except ValueError:
            parsed = _NOT_JSON
        if "expect" in self.model_fields_set:
            matches = (
                parsed == self.expect
                if parsed is not _NOT_JSON
                else isinstance(self.expect, str) and answer.decode("utf-8", "replace").strip() == self.expect
            )
            if not matches:
                return f"expected {json.dumps(self.expect)[:200]}, got {shown!r} ({content_type})"
        if self.json_path is not None:
            if parsed is _NOT_JSON:
                return f"{self.json_path}: the answer is not JSON: {shown!r} ({content_type})"
            found, value = _lookup(parsed, parse_json_path(self.json_path))
            if not found:
                return f"{self.json_path} not found in the answer {shown!r}"
            if "equals" in self.model_fields_set and value != self.equals:
                return (
                    f"{self.json_path} is {json.dumps(value)[:200]}, expected {json.dumps(self.equals)[:200]}"
                )
        return None


_NOT_JSON = object()


def _body_bytes(value: JsonValue) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else json.dumps(value).encode("utf-8")


def _lookup(document: Any, segments: list[str | int]) -> tuple[bool, Any]:
    value = document
    for segment in segments:
        if isinstance(segment, int):
            if not isinstance(value, list) or segment >= len(value):
                return False, None
            value = value[segment]
            continue
        if not isinstance(value, dict) or segment not in value:
            return False, None
        value = value[segment]
    return True, value


def run_smoke_test(runtime: Any, endpoint_name: str, test: SmokeTest) -> str | None:
    """Invoke the endpoint once with the smoke test's request: None when it passed, else the reason.

    Raises SmokeTestNotReady when SageMaker could not take the request yet (worth retrying).
    """
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            Body=test.request_body(),
            ContentType=test.content_type,
            Accept=test.accept,
        )
    except ReadTimeoutError:
        return f"no answer within {INVOKE_READ_TIMEOUT_S:.0f} s"
    except ClientError as error:
        details = error.response.get("Error", {})
        code = str(details.get("Code", "Error"))
        if code in _NOT_READY_CODES:
            raise SmokeTestNotReady(f"{code}: {details.get('Message', '')}") from error
        original = error.response.get("OriginalStatusCode")
        status = f" (the model answered {original})" if original else ""
        return f"the request failed with {code}{status}: {details.get('Message', '')}"[:1000]
    answer = response["Body"].read()
    return test.check(response.get("ContentType"), answer)
