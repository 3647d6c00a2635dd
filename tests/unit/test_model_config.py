"""modeldrop.json parsing (each bad key and value named), memory sizing and config resolution."""

from __future__ import annotations

import json

import pytest
from modeldrop.frameworks import Framework
from modeldrop.model_config import (
    ConfigDefaults,
    ModelConfig,
    memory_for_model_size,
    parse_model_config,
    resolve_config,
)
from modeldrop.rejection import RejectionCode, UploadRejected

MB = 2**20
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def reason_for(raw: bytes) -> str:
    with pytest.raises(UploadRejected) as caught:
        parse_model_config(raw)
    assert caught.value.code is RejectionCode.CONFIG
    return caught.value.reason


def test_parses_a_complete_config() -> None:
    # Given every key with a valid value
    raw = json.dumps(
        {
            "framework": "xgboost",
            "framework_version": "1.7-1",
            "image": XGBOOST_IMAGE,
            "memory_mb": 2048,
            "max_concurrency": 5,
            "provisioned_concurrency": 1,
            "environment": {"LOG_LEVEL": "debug"},
        }
    ).encode()

    # When parsed
    config = parse_model_config(raw)

    # Then every value is kept
    assert config == ModelConfig(
        framework=Framework.XGBOOST,
        framework_version="1.7-1",
        image=XGBOOST_IMAGE,
        memory_mb=2048,
        max_concurrency=5,
        provisioned_concurrency=1,
        environment={"LOG_LEVEL": "debug"},
    )


def test_an_empty_object_sets_nothing() -> None:
    config = parse_model_config(b"{}")
    assert config.model_fields_set == set()
    assert config.environment == {}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"memmory_mb": 2048}', "modeldrop.json: unknown key 'memmory_mb' (did you mean 'memory_mb'?)"),
        (b'{"memoryMb": 2048}', "modeldrop.json: unknown key 'memoryMb' (did you mean 'memory_mb'?)"),
        (b'{"flavor": "red"}', "modeldrop.json: unknown key 'flavor'"),
        (b'{"approval": "yes"}', "modeldrop.json: approval must be 'auto' or 'manual' (got 'yes')"),
        (
            b'{"memory_mb": 1000}',
            "modeldrop.json: memory_mb must be one of 1024, 2048, 3072, 4096, 5120, 6144 (got 1000)",
        ),
        (b'{"memory_mb": "2048"}', "modeldrop.json: memory_mb must be an integer (got '2048')"),
        (b'{"memory_mb": true}', "modeldrop.json: memory_mb must be an integer (got True)"),
        (
            b'{"max_concurrency": 0}',
            "modeldrop.json: max_concurrency must be greater than or equal to 1 (got 0)",
        ),
        (
            b'{"max_concurrency": 201}',
            "modeldrop.json: max_concurrency must be less than or equal to 200 (got 201)",
        ),
        (
            b'{"provisioned_concurrency": -1}',
            "modeldrop.json: provisioned_concurrency must be greater than or equal to 0 (got -1)",
        ),
        (
            b'{"max_concurrency": 2, "provisioned_concurrency": 3}',
            "modeldrop.json: provisioned_concurrency (3) must not exceed max_concurrency (2)",
        ),
        (
            b'{"framework": "scikit"}',
            "modeldrop.json: framework must be one of 'sklearn', 'xgboost', 'onnx', 'pytorch' or "
            "'tensorflow' (got 'scikit')",
        ),
        (
            b'{"framework_version": "1 2"}',
            "modeldrop.json: framework_version must look like a version such as '1.2-1' (got '1 2')",
        ),
        (
            b'{"image": "not an image"}',
            "modeldrop.json: image must be a container image URI such as "
            "'123456789012.dkr.ecr.us-east-1.amazonaws.com/my-repo:tag' (got 'not an image')",
        ),
        (b'{"environment": {"A": 1}}', "modeldrop.json: environment.A must be a valid string (got 1)"),
        (b'{"environment": ["A"]}', "modeldrop.json: environment must be a JSON object (got ['A'])"),
        (
            b'{"environment": {"1A": "x"}}',
            "modeldrop.json: environment key '1A' must be letters, digits and underscores, "
            "not starting with a digit, at most 1024 characters",
        ),
        (
            b'{"environment": {"A": "' + b"x" * 1025 + b'"}}',
            "modeldrop.json: environment value of 'A' must be at most 1024 characters (got 1025)",
        ),
        (b"[1, 2]", "modeldrop.json: must be a JSON object (got list)"),
        (b'{"memory_mb": ', "modeldrop.json: invalid JSON: Expecting value: line 1 column 15 (char 14)"),
        (b"\xff\xfe{}", "modeldrop.json: not UTF-8 text"),
        # 40 KB, under the size limit, but deeper than Python's JSON decoder recurses.
        (
            b'{"environment": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
            "modeldrop.json: nested too deeply to be a modeldrop.json",
        ),
    ],
)
def test_rejects_bad_keys_and_values_naming_them(raw: bytes, reason: str) -> None:
    assert reason_for(raw) == reason


def test_too_many_environment_variables() -> None:
    raw = json.dumps({"environment": {f"VAR_{i}": "x" for i in range(101)}}).encode()
    assert reason_for(raw) == "modeldrop.json: environment must have at most 100 variables (got 101)"


def test_several_problems_are_all_reported() -> None:
    assert reason_for(b'{"memory_mb": 1000, "foo": 1}') == (
        "modeldrop.json: memory_mb must be one of 1024, 2048, 3072, 4096, 5120, 6144 (got 1000); "
        "modeldrop.json: unknown key 'foo'"
    )


def test_the_source_name_is_used_in_reasons() -> None:
    with pytest.raises(UploadRejected) as caught:
        parse_model_config(b'{"x": 1}', source="models/iris/modeldrop.json")
    assert caught.value.reason == "models/iris/modeldrop.json: unknown key 'x'"


@pytest.mark.parametrize(
    ("size_mb", "memory"),
    [
        (0, 1024),
        (100, 1024),
        (512, 1024),
        (600, 2048),
        (1600, 3072),
        (4000, 5120),
        (4200, 6144),
        (6144, 6144),
    ],
)
def test_memory_is_sized_from_the_model(size_mb: int, memory: int) -> None:
    assert memory_for_model_size(size_mb * MB) == memory


def test_a_model_larger_than_serverless_memory_is_rejected() -> None:
    with pytest.raises(UploadRejected) as caught:
        memory_for_model_size(6145 * MB)
    assert caught.value.reason == (
        "model too large for serverless inference: 6145 MB uncompressed, "
        "more than the largest memory size (6144 MB)"
    )


def test_resolve_fills_everything_from_defaults_detection_and_size() -> None:
    # Given no modeldrop.json, a detected scikit-learn model of 700 MB and stack defaults
    resolved = resolve_config(
        None,
        defaults=ConfigDefaults(max_concurrency=10, provisioned_concurrency=0),
        detected_framework=Framework.SKLEARN,
        uncompressed_bytes=700 * MB,
        region="eu-west-1",
    )

    # Then the framework's default image and memory sized from the model are used
    assert resolved.model_dump(by_alias=True) == {
        "framework": Framework.SKLEARN,
        "frameworkVersion": "1.2-1",
        "image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "memoryMb": 2048,
        "maxConcurrency": 10,
        "provisionedConcurrency": 0,
        "environment": {},
        "smokeTest": None,
        "rollout": None,
        "approval": None,
    }


def test_resolve_prefers_the_model_config() -> None:
    config = parse_model_config(
        b'{"framework": "xgboost", "memory_mb": 3072, "max_concurrency": 2, "provisioned_concurrency": 1,'
        b' "environment": {"K": "V"}, "approval": "manual"}'
    )
    resolved = resolve_config(
        config,
        defaults=ConfigDefaults(memory_mb=1024, max_concurrency=10, provisioned_concurrency=5),
        detected_framework=Framework.SKLEARN,
        uncompressed_bytes=MB,
        region="us-east-1",
    )
    assert resolved.framework is Framework.XGBOOST
    assert resolved.image == XGBOOST_IMAGE
    assert (resolved.memory_mb, resolved.max_concurrency, resolved.provisioned_concurrency) == (3072, 2, 1)
    assert resolved.environment == {"K": "V"}
    # And the deployment record's config map (deploy.py) is camelCase JSON
    assert resolved.model_dump(by_alias=True, mode="json") == {
        "framework": "xgboost",
        "frameworkVersion": "1.7-1",
        "image": XGBOOST_IMAGE,
        "memoryMb": 3072,
        "maxConcurrency": 2,
        "provisionedConcurrency": 1,
        "environment": {"K": "V"},
        "smokeTest": None,
        "rollout": None,
        "approval": "manual",
    }


def test_resolve_caps_a_default_provisioned_concurrency_at_the_models_max() -> None:
    config = parse_model_config(b'{"max_concurrency": 2}')
    resolved = resolve_config(
        config,
        defaults=ConfigDefaults(provisioned_concurrency=5, max_concurrency=10),
        detected_framework=Framework.ONNX,
        uncompressed_bytes=MB,
        region="us-east-1",
    )
    assert (resolved.max_concurrency, resolved.provisioned_concurrency) == (2, 2)


def test_resolve_with_a_custom_image_needs_no_framework() -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-server:3"
    resolved = resolve_config(
        ModelConfig(image=image),
        defaults=ConfigDefaults(),
        detected_framework=None,
        uncompressed_bytes=MB,
        region="us-east-1",
    )
    assert (resolved.image, resolved.framework, resolved.framework_version) == (image, None, None)


@pytest.mark.parametrize(
    ("config", "detected", "size", "region", "reason"),
    [
        (
            None,
            None,
            MB,
            "us-east-1",
            "modeldrop.json: framework is needed: no model file told which framework the model uses "
            "and there is no code/inference.py; set framework (sklearn, xgboost, onnx, pytorch, tensorflow) "
            "or image",
        ),
        (
            ModelConfig(memory_mb=1024),
            Framework.SKLEARN,
            1500 * MB,
            "us-east-1",
            "modeldrop.json: memory_mb 1024 is smaller than the model (1500 MB uncompressed)",
        ),
        (
            ModelConfig(framework_version="9.9"),
            Framework.PYTORCH,
            MB,
            "us-east-1",
            "modeldrop.json: no prebuilt image for pytorch version '9.9'; supported versions: 2.0, 2.1, 2.2",
        ),
        (
            None,
            Framework.SKLEARN,
            MB,
            "xx-nowhere-1",
            "modeldrop.json: no prebuilt sklearn image known for region 'xx-nowhere-1'; known regions: "
            "ap-northeast-1, ap-northeast-2, ap-south-1, ap-southeast-1, ap-southeast-2, ca-central-1, "
            "eu-central-1, eu-north-1, eu-west-1, eu-west-2, eu-west-3, sa-east-1, us-east-1, us-east-2, "
            "us-west-1, us-west-2 (add it to framework_images.json)",
        ),
        (
            None,
            Framework.SKLEARN,
            7000 * MB,
            "us-east-1",
            "model too large for serverless inference: 7000 MB uncompressed, "
            "more than the largest memory size (6144 MB)",
        ),
    ],
)
def test_resolve_rejections(
    config: ModelConfig | None, detected: Framework | None, size: int, region: str, reason: str
) -> None:
    with pytest.raises(UploadRejected) as caught:
        resolve_config(
            config,
            defaults=ConfigDefaults(),
            detected_framework=detected,
            uncompressed_bytes=size,
            region=region,
        )
    assert caught.value.reason == reason
