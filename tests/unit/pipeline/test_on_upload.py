"""OnUpload (modeldrop.deploy): moto for S3, DynamoDB, Step Functions; Stubber for SageMaker requests."""

from __future__ import annotations

import dataclasses
import json
import tarfile
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from modeldrop.deploy import handle_upload, idempotent_deployer
from modeldrop.events import UploadedObject
from modeldrop.frameworks import image_for
from modeldrop.naming import deployment_id
from modeldrop.records import DeploymentStatus

from tests.unit.pipeline.conftest import (
    ROLE_ARN,
    Stack,
    StubbedSageMaker,
    deploy_dependencies,
    expect_registration,
    regular,
    special,
    tarball,
)
from tests.unit.pipeline.template_resources import REGION
from tests.unit.test_preflight import account_with_endpoints

KEY = "models/iris/model.tar.gz"
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/modeldrop-iris"
MODEL_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:model/modeldrop-iris-v1"
CONFIG_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:endpoint-config/modeldrop-iris-v1"
NOT_FOUND: dict[str, Any] = {
    "service_error_code": "ValidationException",
    "service_message": 'Could not find endpoint "x".',
}


def upload(stack: Stack, body: bytes, key: str = KEY) -> UploadedObject:
    stored = stack.put_object(key, body)
    return UploadedObject(bucket=stack.bucket, key=key, object_version=stored["version"], etag=stored["etag"])


def pinned_url(uploaded: UploadedObject, version: int) -> str:
    """Where OnUpload copies the inspected object version for SageMaker."""
    identifier = deployment_id("iris", version, uploaded.bucket, uploaded.key, uploaded.object_version)
    return f"s3://{uploaded.bucket}/deployments/iris/{identifier}/model.tar.gz"


# What the SageMaker Python SDK v2 sets on a repacked script-mode model (src/sagemaker/model.py), and so
# what OnUpload sends for the scikit-learn image (serving_setup.ENVIRONMENT_RULES).
SDK_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    "SAGEMAKER_REGION": REGION,
}


def expect_model_and_config(
    sagemaker: StubbedSageMaker,
    uploaded: UploadedObject,
    version: int = 1,
    *,
    memory: int = 2048,
    image: str | None = None,
    environment: dict[str, str] | None = SDK_ENVIRONMENT,
    approval: str = "Approved",
    max_concurrency: int = 5,
) -> None:
    name = f"modeldrop-iris-v{version}"
    container: dict[str, Any] = {
        "Image": image or image_for("sklearn", None, REGION),
        "ModelDataUrl": pinned_url(uploaded, version),
    }
    if environment:
        container["Environment"] = environment
    sagemaker.stubber.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:{REGION}:123456789012:model/{name}"},
        {
            "ModelName": name,
            "PrimaryContainer": container,
            "ExecutionRoleArn": ROLE_ARN,
            "Tags": [{"Key": "managed-by", "Value": "modeldrop"}],
        },
    )
    sagemaker.stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint-config/{name}"},
        {
            "EndpointConfigName": name,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    # ProvisionedConcurrency is left out when 0 (SageMaker refuses 0).
                    "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": max_concurrency},
                }
            ],
            "Tags": [{"Key": "managed-by", "Value": "modeldrop"}],
        },
    )
    expect_registration(sagemaker, version, approval=approval)


def describe(status: str, config: str = "modeldrop-iris-v0") -> dict[str, Any]:
    return {
        "EndpointName": "modeldrop-iris",
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/modeldrop-iris",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }


def expect_endpoint_created(sagemaker: StubbedSageMaker) -> None:
    """No endpoint yet: OnUpload looks it up, then creates it on the first version's config."""
    sagemaker.stubber.add_client_error(
        "describe_endpoint", **NOT_FOUND, expected_params={"EndpointName": "modeldrop-iris"}
    )
    sagemaker.stubber.add_response(
        "create_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/modeldrop-iris"},
        {"EndpointName": "modeldrop-iris", "EndpointConfigName": "modeldrop-iris-v1", "Tags": ANY},
    )


def execution_input(stack: Stack) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    executions = sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    assert len(executions) == 1
    return dict(json.loads(sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"]))


def test_first_upload_creates_model_config_and_endpoint(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given a real sklearn iris tarball in the versioned bucket and no endpoint yet
    uploaded = upload(stack, iris_tarball)
    expect_model_and_config(sagemaker, uploaded)
    expect_endpoint_created(sagemaker)

    # When OnUpload handles it
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then SageMaker got exactly those calls, the deployment is recorded and followed by the state machine
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.status is DeploymentStatus.DEPLOYING
    record = stack.records().get_deployment("iris", 1)
    assert record is not None
    assert record.status is DeploymentStatus.DEPLOYING
    assert record.object_version == uploaded.object_version
    assert record.etag == uploaded.etag
    assert record.config is not None
    assert record.config.framework == "sklearn"
    assert record.config.memory_mb == 2048
    assert record.execution_arn is not None and record.execution_arn.endswith(record.deployment_id)
    # And SageMaker reads a copy of exactly the inspected version, even if the key is overwritten later
    stack.put_object(KEY, b"a later upload")
    assert record.model_data_key is not None
    s3 = boto3.client("s3", region_name=REGION)
    pinned = s3.get_object(Bucket=stack.bucket, Key=record.model_data_key)["Body"].read()
    assert pinned == iris_tarball
    assert pinned_url(uploaded, 1) == f"s3://{stack.bucket}/{record.model_data_key}"
    model = stack.records().get_model("iris")
    assert model is not None and model.status == "Creating"
    assert model.last_deployment_id == record.deployment_id
    assert execution_input(stack) == {
        "deploymentId": record.deployment_id,
        "modelName": "iris",
        "version": 1,
        "endpointName": "modeldrop-iris",
        "endpointConfigName": "modeldrop-iris-v1",
        "status": "Deploying",
        "maxPolls": 60,
        "rollout": None,
        "rolloutPhase": None,
    }


def test_manual_approval_registers_the_version_and_leaves_the_endpoint_alone(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given modeldrop.json asking for manual approval
    stack.put_object("models/iris/modeldrop.json", json.dumps({"approval": "manual"}).encode())
    uploaded = upload(stack, iris_tarball)
    # (SageMaker gets the model, the config and the package: no endpoint call is queued)
    expect_model_and_config(sagemaker, uploaded, approval="PendingManualApproval")

    # When OnUpload handles the upload
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then the version waits for approval: recorded PendingApproval with its package, nothing started
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.status is DeploymentStatus.PENDING_APPROVAL
    assert (
        outcome.model_package_arn == f"arn:aws:sagemaker:{REGION}:123456789012:model-package/modeldrop-iris/1"
    )
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.PENDING_APPROVAL
    assert (record.model_package_version, record.approval_status) == (1, "PendingManualApproval")
    assert record.execution_arn is None
    assert stack.records().get_model("iris") is None
    sfn = boto3.client("stepfunctions", region_name=REGION)
    assert sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"] == []


def test_upload_to_in_service_endpoint_updates_it(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given an endpoint InService on an older version
    uploaded = upload(stack, iris_tarball)
    expect_model_and_config(sagemaker, uploaded)
    sagemaker.stubber.add_response(
        "describe_endpoint", describe("InService"), {"EndpointName": "modeldrop-iris"}
    )
    sagemaker.stubber.add_response(
        "update_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/modeldrop-iris"},
        {"EndpointName": "modeldrop-iris", "EndpointConfigName": "modeldrop-iris-v1"},
    )

    # When the new version is uploaded
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then the endpoint is updated in place (the old version keeps serving meanwhile)
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.status is DeploymentStatus.DEPLOYING
    model = stack.records().get_model("iris")
    assert model is not None and model.status == "Updating"


@pytest.mark.parametrize("endpoint_status", ["Creating", "Updating"])
def test_upload_while_endpoint_busy_is_queued(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes, endpoint_status: str
) -> None:
    # Given an endpoint busy with another deployment
    uploaded = upload(stack, iris_tarball)
    expect_model_and_config(sagemaker, uploaded)
    sagemaker.stubber.add_response(
        "describe_endpoint", describe(endpoint_status), {"EndpointName": "modeldrop-iris"}
    )

    # When a new version is uploaded
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then it is Queued: no UpdateEndpoint (the stubber would fail on one), the state machine waits its turn
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.status is DeploymentStatus.QUEUED
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.QUEUED
    assert execution_input(stack)["status"] == "Queued"


def test_update_refused_as_in_progress_is_queued(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given an endpoint that turned Updating between DescribeEndpoint and UpdateEndpoint
    uploaded = upload(stack, iris_tarball)
    expect_model_and_config(sagemaker, uploaded)
    sagemaker.stubber.add_response("describe_endpoint", describe("InService"))
    sagemaker.stubber.add_client_error(
        "update_endpoint",
        service_error_code="ValidationException",
        service_message="Cannot update in-progress endpoint",
    )

    # When OnUpload handles the upload
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then it waits its turn instead of failing
    assert outcome.status is DeploymentStatus.QUEUED


def test_failed_endpoint_is_deleted_and_the_upload_queued(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given an endpoint whose first creation failed (it cannot be updated)
    uploaded = upload(stack, iris_tarball)
    expect_model_and_config(sagemaker, uploaded)
    sagemaker.stubber.add_response("describe_endpoint", describe("Failed"))
    sagemaker.stubber.add_response("delete_endpoint", {}, {"EndpointName": "modeldrop-iris"})

    # When a fixed version is uploaded
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then the broken endpoint is deleted and the deployment queued (created once the deletion is over)
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.status is DeploymentStatus.QUEUED


def test_config_from_tarball_and_sibling(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given a sibling modeldrop.json asking for more memory and an image override
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-sklearn:1.0"
    stack.put_object(
        "models/iris/modeldrop.json",
        json.dumps({"memory_mb": 4096, "image": image, "environment": {"LOG_LEVEL": "debug"}}).encode(),
    )
    uploaded = upload(stack, iris_tarball)
    sagemaker.stubber.add_response(
        "create_model",
        {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/modeldrop-iris-v1"},
        {
            "ModelName": "modeldrop-iris-v1",
            "PrimaryContainer": {
                "Image": image,
                "ModelDataUrl": pinned_url(uploaded, 1),
                "Environment": {"LOG_LEVEL": "debug"},
            },
            "ExecutionRoleArn": ROLE_ARN,
            "Tags": ANY,
        },
    )
    sagemaker.stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/modeldrop-iris-v1"},
        {
            "EndpointConfigName": "modeldrop-iris-v1",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "modeldrop-iris-v1",
                    "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 5},
                }
            ],
            "Tags": ANY,
        },
    )
    expect_registration(sagemaker)
    sagemaker.stubber.add_client_error("describe_endpoint", **NOT_FOUND)
    sagemaker.stubber.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN})

    # When OnUpload handles the upload
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then the sibling config was applied
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.status is DeploymentStatus.DEPLOYING


def test_provisioned_concurrency_is_sent_when_positive(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given stack defaults with provisioned concurrency
    uploaded = upload(stack, iris_tarball)
    sagemaker.stubber.add_response("create_model", {"ModelArn": MODEL_ARN})
    sagemaker.stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": CONFIG_ARN},
        {
            "EndpointConfigName": "modeldrop-iris-v1",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "modeldrop-iris-v1",
                    "ServerlessConfig": {
                        "MemorySizeInMB": 1024,
                        "MaxConcurrency": 8,
                        "ProvisionedConcurrency": 2,
                    },
                }
            ],
            "Tags": ANY,
        },
    )
    expect_registration(sagemaker)
    sagemaker.stubber.add_client_error("describe_endpoint", **NOT_FOUND)
    sagemaker.stubber.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN})
    deps = deploy_dependencies(
        stack,
        sagemaker,
        DEFAULT_MEMORY_MB="1024",
        DEFAULT_MAX_CONCURRENCY="8",
        DEFAULT_PROVISIONED_CONCURRENCY="2",
    )

    # When OnUpload handles it
    handle_upload(uploaded, deps)

    # Then the ServerlessConfig carries ProvisionedConcurrency
    sagemaker.stubber.assert_no_pending_responses()


def test_sagemaker_refusing_the_model_is_recorded_as_failed(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given SageMaker refuses CreateModel
    uploaded = upload(stack, iris_tarball)
    sagemaker.stubber.add_client_error(
        "create_model", service_error_code="ValidationException", service_message="Image is not accessible"
    )

    # When OnUpload handles it
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then the deployment failed with SageMaker's message and the endpoint was never touched
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.status is DeploymentStatus.FAILED
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.FAILED
    assert record.reason == "SageMaker refused the deployment: ValidationException: Image is not accessible"
    assert record.ttl is not None


def test_duplicate_event_does_nothing_twice(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given one upload, deployed once through the idempotent entry point
    uploaded = upload(stack, iris_tarball)
    expect_model_and_config(sagemaker, uploaded)
    sagemaker.stubber.add_client_error("describe_endpoint", **NOT_FOUND)
    sagemaker.stubber.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN})
    deploy_once, _ = idempotent_deployer(deploy_dependencies(stack, sagemaker))
    first = deploy_once(upload=uploaded)

    # When S3 delivers the same event again (same bucket, key and version)
    second = deploy_once(upload=uploaded)

    # Then the stored outcome is replayed: no SageMaker call (none queued), no second record or execution
    assert second == first
    assert [d.version for d in stack.records().list_deployments("iris")] == [1]
    assert execution_input(stack)["version"] == 1


def test_new_version_of_same_key_is_not_a_duplicate(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given one deployed upload
    deploy_once, _ = idempotent_deployer(deploy_dependencies(stack, sagemaker))
    first = upload(stack, iris_tarball)
    expect_model_and_config(sagemaker, first)
    sagemaker.stubber.add_client_error("describe_endpoint", **NOT_FOUND)
    sagemaker.stubber.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN})
    deploy_once(upload=first)

    # When the same key is uploaded again (a new S3 object version) while the endpoint is Creating
    again = upload(stack, iris_tarball)
    expect_model_and_config(sagemaker, again, 2)
    sagemaker.stubber.add_response("describe_endpoint", describe("Creating", "modeldrop-iris-v1"))
    second = deploy_once(upload=again)

    # Then it is a second deployment, queued behind the first
    assert second.version == 2
    assert second.status is DeploymentStatus.QUEUED


GZIP_OF_NOTHING = tarball([])  # a valid gzip holding an empty tar


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"", "empty object: the uploaded object has no bytes", id="empty-object"),
        pytest.param(
            b"this is not a tarball at all",
            (
                "not a gzip file: model.tar.gz must be a gzip-compressed tar archive "
                "(tar -czf model.tar.gz ...)"
            ),
            id="not-gzip",
        ),
        pytest.param(
            __import__("gzip").compress(b"plain text, gzipped" * 50),
            "not a tar archive: the gzip data does not hold a tar archive (invalid header)",
            id="not-tar",
        ),
        pytest.param(GZIP_OF_NOTHING, "empty tarball: the archive has no files", id="empty-tar"),
        pytest.param(
            tarball([regular("/etc/model.joblib", b"x")]),
            "absolute path not allowed: '/etc/model.joblib'",
            id="absolute-path",
        ),
        pytest.param(
            tarball([regular("../model.joblib", b"x")]),
            "path escapes the archive root: '../model.joblib'",
            id="dot-dot",
        ),
        pytest.param(
            tarball([regular("model.joblib", b"x"), special("evil", tarfile.SYMTYPE, "../../etc/passwd")]),
            "symlink 'evil' points outside the archive root: '../../etc/passwd'",
            id="symlink-outside",
        ),
        pytest.param(
            tarball(
                [
                    regular("model.joblib", b"x"),
                    special("x", tarfile.SYMTYPE, "a/b/.."),
                    special("a", tarfile.DIRTYPE),
                    special("a/b", tarfile.SYMTYPE, ".."),
                ]
            ),
            "symlink 'x' points outside the archive root: 'a/b/..' leads to '..' through 'a/b'",
            id="link-chain",
        ),
        pytest.param(
            tarball([regular("model.joblib", b"x"), regular(f"code/{'n' * 300}.py", b"x")]),
            f"member name has a component of 303 bytes: '{'n' * 60}...'; a file name may have at most "
            "255 bytes (NAME_MAX)",
            id="name-over-name-max",
        ),
        pytest.param(
            tarball([regular("model.joblib", b"x"), special("dev", tarfile.CHRTYPE)]),
            "device file not allowed: 'dev'",
            id="device",
        ),
        pytest.param(
            tarball([regular("model.joblib", b"x"), special("pipe", tarfile.FIFOTYPE)]),
            "fifo not allowed: 'pipe'",
            id="fifo",
        ),
        pytest.param(
            tarball([regular("README.md", b"hello")]),
            (
                "no model artifact: found no model file (.joblib, .pkl, .pickle, xgboost-model, .ubj, .bst, "
                ".onnx, .pt, .pth, saved_model.pb) and no code/inference.py"
            ),
            id="no-artifact",
        ),
        pytest.param(
            tarball([regular("model.joblib", b"x"), regular("modeldrop.json", b'{"memory": 2048}')]),
            "modeldrop.json in model.tar.gz: unknown key 'memory' (did you mean 'memory_mb'?)",
            id="config-unknown-key",
        ),
        pytest.param(
            tarball([regular("model.joblib", b"x"), regular("modeldrop.json", b'{"max_concurrency": 0}')]),
            "modeldrop.json in model.tar.gz: max_concurrency must be greater than or equal to 1 (got 0)",
            id="config-bad-value",
        ),
        pytest.param(
            tarball([regular("model.onnx", b"x"), regular("modeldrop.json", b'{"framework": "sklearn"}')]),
            "the scikit-learn image has no default model_fn and no .joblib, .pkl or .pickle file was found "
            "to generate one for: add code/inference.py with a model_fn",
            id="sklearn-nothing-to-load",
        ),
        pytest.param(
            tarball([regular("saved_model.pb", b"pb"), regular("variables/variables.index", b"i")]),
            "TensorFlow Serving needs the SavedModel in a numbered version folder: 1/saved_model.pb "
            "(with 1/variables/), or <model name>/1/saved_model.pb; found saved_model.pb",
            id="tensorflow-no-version-folder",
        ),
        pytest.param(
            tarball([regular("export/iris/saved_model.pb", b"pb")]),
            "TensorFlow Serving needs the SavedModel in a numbered version folder: 1/saved_model.pb "
            "(with 1/variables/), or <model name>/1/saved_model.pb; found export/iris/saved_model.pb",
            id="tensorflow-version-folder-not-numbered",
        ),
        pytest.param(
            tarball([regular("encoder.pt", b"a"), regular("classifier.pth", b"b")]),
            "the PyTorch image's default model_fn loads model.pt at the tarball root, or the only .pt/.pth "
            "file there (TorchScript); found .pt/.pth files: encoder.pt, classifier.pth. Rename the model to "
            "model.pt at the root, or add code/inference.py with a model_fn",
            id="pytorch-two-candidates",
        ),
        pytest.param(
            tarball([regular("weights/model.pt", b"a")]),
            "the PyTorch image's default model_fn loads model.pt at the tarball root, or the only .pt/.pth "
            "file there (TorchScript); found .pt/.pth files: none at the root. Rename the model to model.pt "
            "at the root, or add code/inference.py with a model_fn",
            id="pytorch-not-at-root",
        ),
    ],
)
def test_rejections_are_recorded_and_call_no_sagemaker(
    stack: Stack, sagemaker: StubbedSageMaker, body: bytes, reason: str
) -> None:
    # Given an unusable upload (the stubbed SageMaker answers nothing: any call would fail the test)
    uploaded = upload(stack, body)

    # When OnUpload handles it
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then the deployment is Rejected with exactly that reason, and nothing was started
    assert outcome.status is DeploymentStatus.REJECTED
    record = stack.records().get_deployment("iris", 1)
    assert record is not None
    assert record.status is DeploymentStatus.REJECTED
    assert record.reason == reason and record.config is None
    stored = boto3.resource("dynamodb", region_name=REGION).Table(stack.deployments_table)
    item = stored.get_item(Key={"pk": "MODEL#iris", "sk": "DEPLOY#000001"})["Item"]
    assert not {"sagemakerModelName", "endpointConfigName", "modelDataKey"} & set(item)
    assert stack.records().get_model("iris") is None
    sfn = boto3.client("stepfunctions", region_name=REGION)
    assert sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"] == []


def test_tar_bomb_over_member_limit_is_rejected(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given a limit of 3 members and a tarball with 5
    body = tarball([regular(f"part{index}.joblib", b"x") for index in range(5)])
    uploaded = upload(stack, body)

    # When OnUpload handles it
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker, MAX_TARBALL_MEMBERS="3"))

    # Then it is rejected for its member count
    assert outcome.status is DeploymentStatus.REJECTED
    assert outcome.reason == "too many members: more than 3 files and directories in the archive"


def test_tar_bomb_over_size_limit_is_rejected(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given a 1 MB uncompressed limit and 3 MB of zeros (a few KB compressed)
    uploaded = upload(stack, tarball([regular("model.joblib", bytes(3 * 2**20))]))

    # When OnUpload handles it
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker, MAX_UNCOMPRESSED_MB="1"))

    # Then it is rejected as too large
    assert outcome.status is DeploymentStatus.REJECTED
    assert outcome.reason == (
        "member too large: 'model.joblib' is 3145728 bytes uncompressed; the limit is 1048576 bytes"
    )


def test_bad_sibling_config_is_rejected_naming_the_key(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given a sibling modeldrop.json with a typo
    stack.put_object("models/iris/modeldrop.json", b'{"framwork": "sklearn"}')
    uploaded = upload(stack, tarball([regular("model.joblib", b"x")]))

    # When OnUpload handles the upload
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then the reason names the file and the key
    assert outcome.status is DeploymentStatus.REJECTED
    assert outcome.reason == "models/iris/modeldrop.json: unknown key 'framwork' (did you mean 'framework'?)"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (
            "models/Iris_Model/model.tar.gz",
            "model name 'Iris_Model' in key 'models/Iris_Model/model.tar.gz' is invalid: use 1-48 lowercase "
            "letters, digits and hyphens, starting and ending with a letter or digit",
        ),
        (
            "models/iris/v2/model.tar.gz",
            "key 'models/iris/v2/model.tar.gz' is not a model upload: expected models/<name>/model.tar.gz "
            "(exactly one folder level under models/)",
        ),
        (
            "models/iris/my-model.tar.gz",
            "key 'models/iris/my-model.tar.gz' is not a model upload: expected models/<name>/model.tar.gz "
            "(exactly one folder level under models/)",
        ),
    ],
)
def test_keys_that_name_no_model_are_recorded(
    stack: Stack, sagemaker: StubbedSageMaker, key: str, reason: str
) -> None:
    # Given an upload under a key that is not models/<valid name>/model.tar.gz
    uploaded = upload(stack, tarball([regular("model.joblib", b"x")]), key=key)

    # When OnUpload handles it
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then it is rejected under UPLOAD#REJECTED with the reason, and no SageMaker call happened
    assert outcome.status is DeploymentStatus.REJECTED
    assert outcome.reason == reason
    (rejected,) = stack.records().rejected_keys()
    assert rejected["key"] == key
    assert rejected["reason"] == outcome.reason


def test_endpoint_quota_refusal_is_recorded_as_failed(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given SageMaker refuses CreateEndpoint for a quota
    uploaded = upload(stack, iris_tarball)
    expect_model_and_config(sagemaker, uploaded)
    sagemaker.stubber.add_client_error("describe_endpoint", **NOT_FOUND)
    sagemaker.stubber.add_client_error(
        "create_endpoint",
        service_error_code="ResourceLimitExceeded",
        service_message="The account-level service limit 'Total concurrency' is 10",
    )

    # When OnUpload handles the upload
    outcome = handle_upload(uploaded, deploy_dependencies(stack, sagemaker))

    # Then the deployment failed with SageMaker's words and no execution was started
    assert outcome.status is DeploymentStatus.FAILED
    assert outcome.reason == (
        "SageMaker refused the deployment: ResourceLimitExceeded: "
        "The account-level service limit 'Total concurrency' is 10"
    )
    sfn = boto3.client("stepfunctions", region_name=REGION)
    assert sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"] == []


def test_throttling_is_raised_for_a_retry_and_recorded(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given SageMaker throttles CreateModel
    uploaded = upload(stack, iris_tarball)
    sagemaker.stubber.add_client_error(
        "create_model", service_error_code="ThrottlingException", service_message="Rate exceeded"
    )

    # When OnUpload handles the upload
    # Then the error propagates (Lambda retries the event) and the record does not stay Queued
    with pytest.raises(ClientError):
        handle_upload(uploaded, deploy_dependencies(stack, sagemaker))
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.FAILED
    assert record is not None and record.reason == (
        "internal error while deploying, retried: ClientError: An error occurred (ThrottlingException) "
        "when calling the CreateModel operation: Rate exceeded"
    )


def test_an_unexpected_error_while_inspecting_is_recorded_in_one_sentence_and_raised(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given an S3 read that breaks mid-stream (a reset connection: not the tarball's fault)
    uploaded = upload(stack, iris_tarball)
    deps = deploy_dependencies(stack, sagemaker)

    class Breaking:
        def __init__(self, body: Any) -> None:
            self.body = body

        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError(104, "Connection reset by peer\nwhile reading the body")

        def close(self) -> None:
            self.body.close()

    class S3ThatBreaks:
        def __getattr__(self, name: str) -> Any:
            return getattr(deps.s3, name)

        def get_object(self, **request: Any) -> dict[str, Any]:
            answer = deps.s3.get_object(**request)
            return {**answer, "Body": Breaking(answer["Body"])}

    # When OnUpload handles the upload
    # Then the error propagates (Lambda retries the event) and the record says what failed, on one line
    with pytest.raises(ConnectionResetError):
        handle_upload(uploaded, dataclasses.replace(deps, s3=S3ThatBreaks()))
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.FAILED
    assert record.reason == (
        "internal error while inspecting the tarball, retried: ConnectionResetError: "
        "[Errno 104] Connection reset by peer"
    )


def test_a_model_above_multipart_size_is_pinned_with_one_server_side_copy(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Any
) -> None:
    # Given a real 12 MiB model tarball (above boto3's 8 MiB multipart threshold) and no endpoint yet
    from modeldrop_local.example_models import build_padded_model

    body = build_padded_model(tmp_path, 12).read_bytes()
    uploaded = upload(stack, body)
    expect_model_and_config(sagemaker, uploaded)
    expect_endpoint_created(sagemaker)
    dependencies = deploy_dependencies(stack, sagemaker)
    operations: list[str] = []
    dependencies.s3.meta.events.register("before-call.s3.*", lambda model, **_: operations.append(model.name))

    # When OnUpload handles it
    handle_upload(uploaded, dependencies)

    # Then the pinned copy is one CopyObject of that exact version (no multipart part copies)
    assert operations.count("CopyObject") == 1
    assert not {"CreateMultipartUpload", "UploadPartCopy"} & set(operations)
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.model_data_key is not None
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.get_object(Bucket=stack.bucket, Key=record.model_data_key)["Body"].read() == body


def test_a_default_max_concurrency_is_lowered_to_fit_the_account_and_noted(
    stack: Stack, sagemaker: StubbedSageMaker, iris_tarball: bytes
) -> None:
    # Given an account whose total serverless concurrency quota (10) has 7 allocated to two other endpoints,
    # and a model whose modeldrop.json sets no max_concurrency (the stack default is 5)
    quotas = boto3.client("service-quotas", region_name=REGION)
    uploaded = upload(stack, iris_tarball)
    with Stubber(quotas) as quotas_stub:
        account_with_endpoints(
            sagemaker.stubber,
            {
                "other-a": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                "other-b": {"MemorySizeInMB": 1024, "MaxConcurrency": 2},
            },
        )
        for code, value in (("L-99AD19BF", 5.0), ("L-96300102", 10.0)):
            quotas_stub.add_response(
                "get_service_quota",
                {"Quota": {"ServiceCode": "sagemaker", "QuotaCode": code, "Value": value}},
                {"ServiceCode": "sagemaker", "QuotaCode": code},
            )
        expect_model_and_config(sagemaker, uploaded, max_concurrency=3)
        expect_endpoint_created(sagemaker)

        # When OnUpload handles it
        deps = deploy_dependencies(stack, sagemaker)
        outcome = handle_upload(uploaded, replace(deps, service_quotas=quotas))

    # Then it deploys with the 3 the quota leaves, and the record says so and why
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.status is DeploymentStatus.DEPLOYING, outcome.reason
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.config is not None and record.serving_setup is not None
    assert record.config.max_concurrency == 3
    assert record.serving_setup.notes[-1] == (
        "max_concurrency 3, not the default 5: account quota 'Maximum total concurrency that can be "
        "allocated across all serverless endpoints' (sagemaker L-96300102) is 10 (applied value) and 7 is "
        "allocated to the other serverless endpoints. Set max_concurrency in modeldrop.json to choose it"
    )
