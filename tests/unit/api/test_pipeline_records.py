"""The API reads what the pipeline writes: records made by modeldrop.records.DeploymentRecords."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.stub import Stubber
from modeldrop.records import DeploymentRecords, DeploymentStatus

from tests.unit.api.support import (
    assert_matches_schema,
    json_body,
    pipeline_deployment,
    streaming,
)
from tests.utils import load_event


def test_records_written_by_the_pipeline_are_served_by_the_api(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given the pipeline recorded v1 live and v2 failed, through its own writer
    records = DeploymentRecords(table)
    first = pipeline_deployment(records.next_version("iris"), DeploymentStatus.IN_SERVICE)
    records.put_deployment(first)
    records.touch_model("iris", "modeldrop-iris", status="Creating", last_deployment_id=first.deployment_id)
    assert records.mark_live(first)
    second = pipeline_deployment(records.next_version("iris"), DeploymentStatus.FAILED, "ping failed")
    records.put_deployment(second)
    # When the API lists, describes and invokes the model
    listing = json_body(api.resolve(load_event("api_list_models"), lambda_context))
    detail = json_body(api.resolve(load_event("api_get_model"), lambda_context))
    sagemaker.add_response(
        "invoke_endpoint",
        {"Body": streaming(b"[0]"), "ContentType": "application/json"},
        expected_params={
            "EndpointName": "modeldrop-iris",
            "Body": load_event("api_invoke")["body"].encode(),
            "ContentType": "application/json",
            "Accept": "application/json",
        },
    )
    invoked = api.resolve(load_event("api_invoke"), lambda_context)
    # Then every answer reflects the records and matches the documented schemas
    assert_matches_schema(listing, "ModelList")
    assert_matches_schema(detail, "ModelDetail")
    assert [model["name"] for model in listing["models"]] == ["iris"]
    assert detail["status"] == "InService"
    assert detail["liveVersion"] == 1
    assert detail["lastDeployment"] | {"createdAt": None, "updatedAt": None} == {
        "deploymentId": "iris-2",
        "version": 2,
        "status": "Failed",
        "reason": "ping failed",
        "objectVersion": "v2",
        "framework": "sklearn",
        "memoryMb": 2048,
        "servingSetup": {
            "repacked": True,
            "addedFiles": ["code/inference.py"],
            "leftOutFiles": [],
            "environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            },
            "notes": ["added code/inference.py"],
        },
        "createdAt": None,
        "updatedAt": None,
        "kind": "Upload",
        "rollbackTo": None,
        "modelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/modeldrop-iris/2",
        "modelPackageVersion": 2,
        "approvalStatus": "Approved",
    }
    assert [entry["version"] for entry in detail["history"]] == [2, 1]
    assert invoked["statusCode"] == 200
