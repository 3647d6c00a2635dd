"""Fixtures: a moto account holding the template's bucket, tables and state machine; SageMaker stubbed."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from modeldrop.deploy import DeployDependencies
from modeldrop.deployment_status import StatusDependencies
from modeldrop.deployments_table import DeploymentRecords
from modeldrop.sagemaker_adapter import SageMakerAdapter
from modeldrop.settings import DeploymentStatusSettings, OnUploadSettings
from modeldrop_local.stack import create_resources
from modeldrop_local.template import FunctionSpec, Resolver
from moto import mock_aws

from tests.unit.pipeline.template_resources import REGION, TEMPLATE_PATH, planned

ROLE_ARN = "arn:aws:iam::123456789012:role/modeldrop-SageMakerExecutionRole"


@dataclass
class Stack:
    bucket: str
    deployments_table: str
    idempotency_table: str
    state_machine_arn: str
    resolver: Resolver
    functions: dict[str, FunctionSpec]

    def environment(self, **overrides: str) -> dict[str, str]:
        """The env template.yaml gives OnUpload and DeploymentStatus (Globals merged), this stack's names."""
        env = {
            **self.functions["DeploymentStatusFunction"].environment,
            **self.functions["OnUploadFunction"].environment,
            "AWS_REGION": REGION,  # set by Lambda itself
        }
        env.update(overrides)
        return env

    def on_upload_settings(self, **overrides: str) -> OnUploadSettings:
        return OnUploadSettings.load(self.environment(**overrides))

    def status_settings(self, **overrides: str) -> DeploymentStatusSettings:
        return DeploymentStatusSettings.load(self.environment(**overrides))

    def records(self) -> DeploymentRecords:
        return DeploymentRecords(boto3.resource("dynamodb", region_name=REGION).Table(self.deployments_table))

    def put_object(self, key: str, body: bytes) -> dict[str, Any]:
        s3 = boto3.client("s3", region_name=REGION)
        response = s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return {"version": response.get("VersionId"), "etag": response["ETag"].strip('"')}


PIPELINE_RESOURCES = ("ModelsBucket", "DeploymentsTable", "IdempotencyTable", "DeployStateMachine")


def build_stack(parameters: dict[str, str] | None = None) -> Stack:
    """The template's bucket, tables and state machine, created in moto by the template reader."""
    resolver, functions = planned(**(parameters or {}))
    create_resources(resolver, TEMPLATE_PATH, PIPELINE_RESOURCES)
    refs = resolver.refs
    return Stack(
        refs["ModelsBucket"],
        refs["DeploymentsTable"],
        refs["IdempotencyTable"],
        refs["DeployStateMachine"],
        resolver,
        functions,
    )


@pytest.fixture
def stack(aws_env: None) -> Iterator[Stack]:
    with mock_aws():
        yield build_stack()


@dataclass
class StubbedSageMaker:
    adapter: SageMakerAdapter
    stubber: Stubber


@pytest.fixture
def sagemaker(stack: Stack) -> Iterator[StubbedSageMaker]:
    """A SageMaker adapter whose client answers only what a test queued: any other call fails the test."""
    client = boto3.client("sagemaker", region_name=REGION)
    with Stubber(client) as stubber:
        yield StubbedSageMaker(SageMakerAdapter(client), stubber)


GROUP_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:model-package-group/modeldrop-iris"
MISSING_GROUP: dict[str, Any] = {
    "service_error_code": "ValidationException",
    "service_message": f"ModelPackageGroup {GROUP_ARN} does not exist.",
}


def expect_registration(
    sagemaker: StubbedSageMaker,
    version: int = 1,
    *,
    approval: str = "Approved",
    group_exists: bool | None = None,
) -> str:
    """The Model Registry calls of one upload (modeldrop.registry): the group on first upload, then the
    package; returns the package's ARN."""
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/modeldrop-iris/{version}"
    if group_exists if group_exists is not None else version > 1:
        sagemaker.stubber.add_response(
            "describe_model_package_group",
            {
                "ModelPackageGroupName": "modeldrop-iris",
                "ModelPackageGroupArn": GROUP_ARN,
                "CreationTime": "2026-01-01T00:00:00Z",
                "CreatedBy": {},
                "ModelPackageGroupStatus": "Completed",
            },
            {"ModelPackageGroupName": "modeldrop-iris"},
        )
    else:
        sagemaker.stubber.add_client_error(
            "describe_model_package_group",
            **MISSING_GROUP,
            expected_params={"ModelPackageGroupName": "modeldrop-iris"},
        )
        sagemaker.stubber.add_response(
            "create_model_package_group",
            {"ModelPackageGroupArn": GROUP_ARN},
            {"ModelPackageGroupName": "modeldrop-iris", "ModelPackageGroupDescription": ANY, "Tags": ANY},
        )
    sagemaker.stubber.add_response(
        "create_model_package",
        {"ModelPackageArn": arn},
        {
            "ModelPackageGroupName": "modeldrop-iris",
            "ModelPackageDescription": ANY,
            "InferenceSpecification": ANY,
            "ModelApprovalStatus": approval,
            "CustomerMetadataProperties": ANY,
            "ClientToken": ANY,
        },
    )
    sagemaker.stubber.add_response(
        "describe_model_package",
        {
            "ModelPackageName": "modeldrop-iris",
            "ModelPackageGroupName": "modeldrop-iris",
            "ModelPackageVersion": version,
            "ModelPackageArn": arn,
            "CreationTime": "2026-01-01T00:00:00Z",
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": approval,
        },
        {"ModelPackageName": arn},
    )
    return arn


def deploy_dependencies(stack: Stack, sagemaker: StubbedSageMaker, **settings: str) -> DeployDependencies:
    return DeployDependencies(
        settings=stack.on_upload_settings(**settings),
        s3=boto3.client("s3", region_name=REGION),
        stepfunctions=boto3.client("stepfunctions", region_name=REGION),
        sagemaker=sagemaker.adapter,
        records=stack.records(),
    )


def status_dependencies(stack: Stack, sagemaker: StubbedSageMaker, **settings: str) -> StatusDependencies:
    return StatusDependencies(
        settings=stack.status_settings(**settings),
        sagemaker=sagemaker.adapter,
        records=stack.records(),
        s3=boto3.client("s3", region_name=REGION),
    )


@pytest.fixture(scope="session")
def iris_tarball(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real scikit-learn iris model, packaged as users do (H1's example builder)."""
    from modeldrop_local.example_models import build_sklearn_iris

    path = build_sklearn_iris(tmp_path_factory.mktemp("iris"))
    return Path(path).read_bytes()


def tarball(members: list[tuple[tarfile.TarInfo, bytes | None]], *, gzip: bool = True) -> bytes:
    """A hand-made (possibly hostile) tarball: each member's TarInfo as given, data for regular files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None
