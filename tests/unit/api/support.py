"""Shared pieces of the API tests: template and OpenAPI readers, records writers, a Lambda context."""

from __future__ import annotations

import io
import json
from typing import Any

import yaml
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.response import StreamingBody
from modeldrop.model_config import ResolvedConfig
from modeldrop.records import Deployment, DeploymentStatus, SetupRecord, utc_now
from modeldrop_local import template
from openapi_schema_validator import OAS30Validator

from tests.utils import REPO_ROOT

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
OPENAPI_PATH = REPO_ROOT / "openapi" / "api.yaml"
TABLE_NAME = "modeldrop-deployments-test"


def load_template() -> dict[str, Any]:
    """template.yaml as written (its DefinitionBody still the AWS::Include of openapi/api.yaml)."""
    return template.load_template(TEMPLATE_PATH, inline_includes=False)


def load_openapi_raw() -> dict[str, Any]:
    # Plain YAML on purpose: AWS::Include accepts no short tags, so safe_load must read it.
    return dict(yaml.safe_load(OPENAPI_PATH.read_text()))


def resolved_openapi(iam: bool = False) -> dict[str, Any]:
    """The OpenAPI document as CloudFormation would hand it to API Gateway, resolved by the template
    reader for a stack whose ApiAuthMode is IAM or API_KEY."""
    resolver = template.plan_stack(
        TEMPLATE_PATH, stack_name="modeldrop", parameters={"ApiAuthMode": "IAM" if iam else "API_KEY"}
    )
    return dict(resolver.resolve(load_openapi_raw()))


def assert_matches_schema(body: Any, schema_name: str) -> None:
    """Validate a response body against components/schemas/<schema_name> of openapi/api.yaml."""
    document = resolved_openapi()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    OAS30Validator(schema).validate(body)


def create_deployments_table(dynamodb: Any) -> Any:
    """The DeploymentsTable exactly as template.yaml declares its keys."""
    properties = load_template()["Resources"]["DeploymentsTable"]["Properties"]
    return dynamodb.create_table(
        TableName=TABLE_NAME,
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
    )


def put_model(table: Any, name: str, *, status: str = "InService", live_version: int | None = 1) -> None:
    item: dict[str, Any] = {
        "pk": f"MODEL#{name}",
        "sk": "MODEL",
        "modelName": name,
        "endpointName": f"modeldrop-{name}",
        "status": status,
        "lastDeploymentId": f"{name}-v{live_version or 1}",
        "updatedAt": "2026-11-29T04:00:00Z",
    }
    if live_version is not None:
        item |= {
            "liveVersion": live_version,
            "liveDeploymentId": f"{name}-v{live_version}",
            "liveObjectVersion": f"obj-{live_version}",
        }
    table.put_item(Item=item)


def put_deployment(
    table: Any, name: str, version: int, *, status: str = "InService", reason: str | None = None
) -> None:
    table.put_item(
        Item={
            "pk": f"MODEL#{name}",
            "sk": f"DEPLOY#{version:06d}",
            "deploymentId": f"{name}-v{version}",
            "modelName": name,
            "version": version,
            "bucket": "models-bucket",
            "key": f"models/{name}/model.tar.gz",
            "objectVersion": f"obj-{version}",
            "etag": f"etag-{version}",
            "status": status,
            "reason": reason,
            "config": {
                "framework": "sklearn",
                "frameworkVersion": "1.2-1",
                "image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
                "memoryMb": 2048,
                "maxConcurrency": 5,
                "provisionedConcurrency": 0,
                "environment": {},
            },
            "endpointName": f"modeldrop-{name}",
            "createdAt": f"2026-11-29T03:{version:02d}:00Z",
            "updatedAt": f"2026-11-29T03:{version:02d}:30Z",
            "ttl": 1798000000,
        }
    )


def streaming(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def json_body(response: dict[str, Any]) -> Any:
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


def header(response: dict[str, Any], name: str) -> str | None:
    """A response header, from `headers` or `multiValueHeaders` (Powertools uses the latter)."""
    for key, value in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(value[0])
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def assert_error(
    response: dict[str, Any], status: int, code: str, model: str | None, request_id: str
) -> dict:
    """Status, content type and the stable error shape, validated against the OpenAPI Error schema."""
    assert response["statusCode"] == status, response["body"]
    assert header(response, "Content-Type") == "application/json"
    body = json_body(response)
    assert_matches_schema(body, "Error")
    assert body["error"] == code
    assert body["model"] == model
    assert body["requestId"] == request_id
    assert "Traceback" not in body["message"]
    return dict(body)


def fake_lambda_context(request_id: str = "lambda-request-0001") -> LambdaContext:
    """A LambdaContext shaped like the one Lambda passes (Powertools reads the underscored fields)."""
    context = LambdaContext()
    context._function_name = "modeldrop-api"
    context._function_version = "$LATEST"
    context._invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:modeldrop-api"
    context._memory_limit_in_mb = 512
    context._aws_request_id = request_id
    context._log_group_name = "/aws/lambda/modeldrop-api"
    context._log_stream_name = "2026/11/29/[$LATEST]0123456789abcdef"
    return context


# What OnUpload records for a bare model.joblib on the scikit-learn image.
SERVING_SETUP = SetupRecord(
    repacked=True,
    added_files=["code/inference.py"],
    environment={"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
    notes=["added code/inference.py"],
)


def pipeline_deployment(version: int, status: DeploymentStatus, reason: str | None = None) -> Deployment:
    """A deployment of iris as OnUpload records it, to be written through DeploymentRecords."""
    now = utc_now()
    return Deployment(
        deployment_id=f"iris-{version}",
        model_name="iris",
        version=version,
        bucket="models",
        key="models/iris/model.tar.gz",
        object_version=f"v{version}",
        etag=f"etag{version}",
        status=status,
        reason=reason,
        config=ResolvedConfig(
            framework="sklearn",
            framework_version="1.2-1",
            image="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            memory_mb=2048,
            max_concurrency=5,
            provisioned_concurrency=0,
            environment=SERVING_SETUP.environment,
        ),
        serving_setup=SERVING_SETUP,
        created_at=now,
        updated_at=now,
        model_package_arn=f"arn:aws:sagemaker:us-east-1:123456789012:model-package/modeldrop-iris/{version}",
        model_package_version=version,
        approval_status="Approved",
    )
