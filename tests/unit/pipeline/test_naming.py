"""Model names from S3 keys, and SageMaker names derived from them."""

from __future__ import annotations

import pytest
from modeldrop.naming import (
    SAGEMAKER_NAME_PATTERN,
    decode_event_key,
    deployment_id,
    endpoint_name,
    model_name_from_key,
    versioned_name,
)
from modeldrop.rejection import RejectionCode, UploadRejected

LONGEST_NAME = "a" * 48


@pytest.mark.parametrize("name", ["iris", "a", "x1", "fraud-detector-2", LONGEST_NAME])
def test_valid_model_keys(name: str) -> None:
    # Given / When a key under models/<name>/ / Then the name is returned
    assert model_name_from_key(f"models/{name}/model.tar.gz") == name


@pytest.mark.parametrize(
    "key",
    [
        "models/Iris/model.tar.gz",
        "models/-iris/model.tar.gz",
        "models/iris-/model.tar.gz",
        "models/ir_is/model.tar.gz",
        f"models/{'a' * 49}/model.tar.gz",
        "models//model.tar.gz",
        "models/iris/v2/model.tar.gz",
        "models/iris/other.tar.gz",
        "other/iris/model.tar.gz",
    ],
)
def test_invalid_model_keys_say_why(key: str) -> None:
    # Given a key that names no valid model / When parsed / Then the reason quotes the key
    with pytest.raises(UploadRejected) as raised:
        model_name_from_key(key)
    assert raised.value.code is RejectionCode.KEY
    assert repr(key) in raised.value.reason


def test_event_keys_are_url_decoded() -> None:
    assert decode_event_key("models/my+model/model.tar.gz") == "models/my model/model.tar.gz"
    assert decode_event_key("models/a%2Bb/model.tar.gz") == "models/a+b/model.tar.gz"


def test_names_fit_sagemaker_even_for_the_longest_model_name() -> None:
    # Given the longest valid model name and a large version number
    # When the endpoint and versioned names are built
    names = [endpoint_name(LONGEST_NAME), versioned_name(LONGEST_NAME, 999_999), versioned_name("iris", 3)]

    # Then all are valid SageMaker names of at most 63 characters, still unique per version
    for name in names:
        assert len(name) <= 63 and SAGEMAKER_NAME_PATTERN.match(name), name
    assert versioned_name("iris", 3) == "modeldrop-iris-v3"
    assert versioned_name(LONGEST_NAME, 1) != versioned_name(LONGEST_NAME, 2)
    assert versioned_name(LONGEST_NAME, 1) != versioned_name("a" * 47 + "b", 1)


def test_deployment_ids_are_valid_execution_names() -> None:
    # Given the longest model name / When a deployment id is built / Then it fits Step Functions' 80 chars
    identifier = deployment_id(LONGEST_NAME, 123_456, "bucket", "key", "version")
    assert len(identifier) <= 80
    assert identifier != deployment_id(LONGEST_NAME, 123_456, "bucket", "key", "other-version")
