"""template.yaml: the facts other parts rely on and least privilege, read from the file."""

from __future__ import annotations

import re
from typing import Any

import pytest
from modeldrop.settings import DeploymentStatusSettings, OnUploadSettings

from tests.unit.pipeline.template_resources import (
    ACCOUNT_ID,
    REGION,
    REPO_ROOT,
    Resolver,
    load_template,
    plan,
)

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PIPELINE_FUNCTIONS = {
    "OnUploadFunction": OnUploadSettings,
    "DeploymentStatusFunction": DeploymentStatusSettings,
}


def statements(logical_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in RESOURCES[logical_id]["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            found.extend(policy["Statement"])
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_globals_carry_runtime_tracing_powertools_and_the_layer() -> None:
    # Given the template's Globals
    function_globals = TEMPLATE["Globals"]["Function"]

    # Then every function runs python3.11 with X-Ray, Powertools settings and the shared layer
    assert TEMPLATE["Transform"] == "AWS::Serverless-2016-10-31"
    assert function_globals["Runtime"] == "python3.11"
    assert function_globals["Tracing"] == "Active"
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= set(
        function_globals["Environment"]["Variables"]
    )
    assert function_globals["Layers"] == [{"Ref": "ModeldropLayer"}]
    layer = RESOURCES["ModeldropLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/modeldrop/"
    assert layer["Metadata"]["BuildMethod"] == "python3.11"


@pytest.mark.parametrize("logical_id", ["OnUploadFunction", "DeploymentStatusFunction", "ApiFunction"])
def test_function_code_exists(logical_id: str) -> None:
    # Given a function of the template
    properties = RESOURCES[logical_id]["Properties"]

    # Then its CodeUri holds the module and handler it names
    module, handler = properties["Handler"].split(".")
    source = (REPO_ROOT / properties["CodeUri"] / f"{module}.py").read_text()
    assert f"def {handler}(" in source


@pytest.mark.parametrize(("logical_id", "settings"), PIPELINE_FUNCTIONS.items())
def test_every_setting_has_its_environment_variable(logical_id: str, settings: type[Any]) -> None:
    # Given the env vars the template gives the function (Globals included)
    variables = set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    variables |= set(RESOURCES[logical_id]["Properties"]["Environment"]["Variables"])

    # Then every variable its settings model reads is set (AWS_REGION comes from Lambda itself)
    required = {field.alias for field in settings.model_fields.values()} - {"AWS_REGION"}
    assert required <= variables


def test_models_bucket_is_versioned_encrypted_private_and_tls_only() -> None:
    # Given the bucket and its policy
    bucket = RESOURCES["ModelsBucket"]["Properties"]
    policy = RESOURCES["ModelsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]

    # Then it has versioning, SSE, all public access blocked and a deny on non-TLS requests
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (deny,) = policy
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_uploads_under_models_notify_on_upload() -> None:
    # Given OnUpload's S3 event
    (event,) = RESOURCES["OnUploadFunction"]["Properties"]["Events"].values()

    # Then it is the models bucket, object-created, models/ … model.tar.gz
    assert event["Type"] == "S3"
    assert event["Properties"]["Bucket"] == {"Ref": "ModelsBucket"}
    assert event["Properties"]["Events"] == "s3:ObjectCreated:*"
    rules = {rule["Name"]: rule["Value"] for rule in event["Properties"]["Filter"]["S3Key"]["Rules"]}
    assert rules == {"prefix": "models/", "suffix": "model.tar.gz"}


@pytest.mark.parametrize(
    ("logical_id", "keys", "ttl"),
    [("DeploymentsTable", ["pk", "sk"], "ttl"), ("IdempotencyTable", ["id"], "expiration")],
)
def test_tables(logical_id: str, keys: list[str], ttl: str) -> None:
    # Given a DynamoDB table of the template
    properties = RESOURCES[logical_id]["Properties"]

    # Then it has the contract's keys, on-demand billing, TTL and point-in-time recovery
    assert [key["AttributeName"] for key in properties["KeySchema"]] == keys
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": ttl, "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


@pytest.mark.parametrize(
    "logical_id",
    ["OnUploadFunction", "DeploymentStatusFunction", "DeployStateMachine", "ApiFunction", "ShadowFunction"],
)
def test_pipeline_policies_are_least_privilege(logical_id: str) -> None:
    # Given the function's or state machine's own statements
    for statement in statements(logical_id):
        resources = as_list(statement["Resource"])
        if statement.get("Sid") == "PreflightReadsAccountServerlessUsage":
            # The one account-wide grant: reads only (the quotas bound every serverless endpoint).
            assert all(
                action.split(":")[1].startswith(("List", "Describe", "Get")) for action in statement["Action"]
            )
            continue
        if statement.get("Sid") == "ReadBakeFigures":
            # GetMetricData has no resource-level permissions: the bake's judge reads, nothing more.
            assert statement["Action"] == "cloudwatch:GetMetricData" and resources == ["*"]
            continue
        actions = as_list(statement["Action"])

        # Then no statement grants everything, SageMaker actions are scoped to modeldrop-* names, and
        # iam:PassRole passes only the SageMaker role, only to SageMaker
        assert "*" not in resources, statement
        assert not any(action.endswith(":*") for action in actions), statement
        if any(action.startswith("sagemaker:") for action in actions):
            assert all("modeldrop-*" in resource["Fn::Sub"] for resource in resources), statement
        if "iam:PassRole" in actions:
            assert resources == [{"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}]
            assert statement["Condition"] == {
                "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
            }


def test_sagemaker_role_only_reads_models() -> None:
    # Given the role SageMaker assumes
    role = RESOURCES["SageMakerExecutionRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    s3_actions = {
        action
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in as_list(statement["Action"])
        if action.startswith("s3:")
    }

    # Then only SageMaker assumes it, and its S3 access is read-only
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert s3_actions == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}


def test_parameters_and_outputs() -> None:
    # Given the parameters and outputs
    parameters = TEMPLATE["Parameters"]

    # Then memory is limited to serverless sizes, auth defaults to API keys, and the contract's outputs exist
    assert parameters["DefaultMemorySize"]["AllowedValues"] == [1024, 2048, 3072, 4096, 5120, 6144]
    assert parameters["ApiAuthMode"]["AllowedValues"] == ["API_KEY", "IAM"]
    assert parameters["ApiAuthMode"]["Default"] == "API_KEY"
    assert {
        "ModelsBucketName",
        "ApiUrl",
        "DeployStateMachineArn",
        "DeploymentsTableName",
        "ApiKeyId",
    } <= set(TEMPLATE["Outputs"])


# S3 bucket naming rules: 3-63 characters of lowercase letters, digits, dots and hyphens, starting and
# ending with a letter or digit (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _resolver_for(stack_name: str, stack_uuid: str) -> Resolver:
    resolver = plan(stack_name)
    resolver.refs["AWS::StackId"] = (
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack_name}/{stack_uuid}"
    )
    return resolver


def _bucket_references(resolver: Resolver) -> set[str]:
    """Every bucket name the template writes out by hand (env vars and policy ARNs), resolved."""
    env = RESOURCES["OnUploadFunction"]["Properties"]["Environment"]["Variables"]
    names = {resolver.resolve(env["MODELS_BUCKET"])}
    found = [
        statement
        for logical_id in ("OnUploadFunction", "DeploymentStatusFunction")
        for statement in statements(logical_id)
    ]
    for policy in RESOURCES["SageMakerExecutionRole"]["Properties"]["Policies"]:
        found.extend(policy["PolicyDocument"]["Statement"])
    for statement in found:
        for resource in as_list(statement["Resource"]):
            if isinstance(resource, dict) and "Fn::Sub" in resource:
                arn = str(resolver.resolve(resource))
                if arn.startswith("arn:aws:s3:::"):
                    names.add(arn.removeprefix("arn:aws:s3:::").split("/", 1)[0])
    return names


@pytest.mark.parametrize("stack_name", ["modeldrop", "ModelDrop-Prod", "A" + "-very-long-stack-name" * 6])
def test_models_bucket_name_is_valid_for_any_stack_name(stack_name: str) -> None:
    # Given a stack name with capitals or of the maximum length CloudFormation allows (128)
    assert len(stack_name) <= 128
    resolver = _resolver_for(stack_name, "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b")

    # When the bucket's name and every hand-written reference to it are resolved
    name = resolver.resolve(RESOURCES["ModelsBucket"]["Properties"]["BucketName"])

    # Then the name obeys S3's rules and every reference names that same bucket
    assert _BUCKET_NAME.match(name), name
    assert _bucket_references(resolver) == {name}


def test_a_redeploy_after_sam_delete_gets_a_new_bucket() -> None:
    # Given the bucket is kept when the stack is deleted (it holds the uploaded models)
    assert RESOURCES["ModelsBucket"]["DeletionPolicy"] == "Retain"

    # When a stack of the same name is created again (CloudFormation gives it a new stack id)
    first = _resolver_for("modeldrop", "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b")
    second = _resolver_for("modeldrop", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
    bucket_name = RESOURCES["ModelsBucket"]["Properties"]["BucketName"]

    # Then its bucket name differs from the retained one, so the create does not collide with it
    assert first.resolve(bucket_name) != second.resolve(bucket_name)
