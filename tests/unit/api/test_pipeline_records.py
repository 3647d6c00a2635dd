"""The API reads what the pipeline writes: records made by modeldrop.deployments_table.DeploymentRecords."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.stub import Stubber
from modeldrop.deployments_table import DeploymentRecords, GoLive
from modeldrop.records import DeploymentStatus

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
    assert records.go_live(first, expected=(DeploymentStatus.IN_SERVICE,)) is GoLive.LIVE
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


# An item as the pipeline wrote it before the records were typed (config and servingSetup maps, the smoke
# test as JSON text, the SageMaker names stored): what a restarted local cloud (--state-dir) reads back.
_ITEM_BEFORE_TYPED_RECORDS = {
    "pk": "MODEL#iris",
    "sk": "DEPLOY#000001",
    "deploymentId": "iris-v000001-5b2c9e1a",
    "modelName": "iris",
    "version": 1,
    "bucket": "models",
    "key": "models/iris/model.tar.gz",
    "objectVersion": "v1",
    "status": "InService",
    "reason": None,
    "config": {
        "framework": "sklearn",
        "frameworkVersion": "1.2-1",
        "image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "memoryMb": 2048,
        "maxConcurrency": 5,
        "provisionedConcurrency": 0,
        "environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        "smokeTest": '{"body":[[5.1,3.5,1.4,0.2]],"expect":[0]}',
    },
    "servingSetup": {
        "repacked": True,
        "addedFiles": ["code/inference.py"],
        "leftOutFiles": [],
        "environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        "notes": [],
    },
    "sagemakerModelName": "modeldrop-iris-v1",
    "endpointConfigName": "modeldrop-iris-v1",
    "endpointName": "modeldrop-iris",
    "modelDataKey": "deployments/iris/iris-v000001-5b2c9e1a/model.tar.gz",
    "createdAt": "2026-01-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:00.000Z",
}


def test_an_item_written_before_the_records_were_typed_reads_and_writes_back_the_same(table: Any) -> None:
    # Given an item in the shape the pipeline wrote before
    table.put_item(Item=_ITEM_BEFORE_TYPED_RECORDS)

    # When it is read as a record, and written again in its place
    records = DeploymentRecords(table)
    record = records.get_deployment("iris", 1)
    assert record is not None and record.config is not None and record.serving_setup is not None
    table.delete_item(Key={"pk": "MODEL#iris", "sk": "DEPLOY#000001"})
    records.put_deployment(record)

    # Then the record is typed: the smoke test parsed (floats and all), names computed as they were stored
    assert record.config.smoke_test is not None and record.config.smoke_test.body == [[5.1, 3.5, 1.4, 0.2]]
    assert record.serving_setup.added_files == ["code/inference.py"]
    assert (record.sagemaker_model_name, record.endpoint_config_name, record.endpoint_name) == (
        "modeldrop-iris-v1",
        "modeldrop-iris-v1",
        "modeldrop-iris",
    )
    assert record.model_data_key == _ITEM_BEFORE_TYPED_RECORDS["modelDataKey"]
    # And what is written back has the shape it was read in
    written = table.get_item(Key={"pk": "MODEL#iris", "sk": "DEPLOY#000001"})["Item"]
    assert written == _ITEM_BEFORE_TYPED_RECORDS
