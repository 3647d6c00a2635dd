"""Framework detection from member names and the prebuilt image table."""

from __future__ import annotations

import json

import pytest
from modeldrop.frameworks import (
    IMAGES_FILE,
    Framework,
    UnknownFrameworkImage,
    artifact_framework,
    check_layout,
    detect_framework,
    framework_from_image,
    image_for,
    pytorch_default_model,
    serving_framework,
    supported_regions,
    supported_versions,
    tensorflow_saved_models,
)
from modeldrop.rejection import RejectionCode, UploadRejected

REQUIRED_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-2",
)


@pytest.mark.parametrize(
    ("name", "framework"),
    [
        ("model.joblib", Framework.SKLEARN),
        ("./model.pkl", Framework.SKLEARN),
        ("nested/Model.PICKLE", Framework.SKLEARN),
        ("xgboost-model", Framework.XGBOOST),
        ("model.ubj", Framework.XGBOOST),
        ("model.bst", Framework.XGBOOST),
        ("xgboost-model.json", Framework.XGBOOST),
        ("xgb_model.model", Framework.XGBOOST),
        ("model.onnx", Framework.ONNX),
        ("model.pt", Framework.PYTORCH),
        ("weights/model.pth", Framework.PYTORCH),
        ("1/saved_model.pb", Framework.TENSORFLOW),
        # Ambiguous or not artifacts at all
        ("model.json", None),
        ("config.model", None),
        ("modeldrop.json", None),
        ("code/helper.pkl", None),
        ("._model.joblib", None),
        ("__MACOSX/model.joblib", None),
        ("README.md", None),
    ],
)
def test_artifact_framework_from_a_member_name(name: str, framework: Framework | None) -> None:
    assert artifact_framework(name) == framework


def test_detection_prefers_the_specific_framework_over_auxiliary_pickles() -> None:
    # Given an ONNX model shipped with a pickled label encoder
    names = ["model.onnx", "label_encoder.pkl", "code/inference.py"]

    # Then the tarball is an ONNX model
    assert detect_framework(names) is Framework.ONNX


def test_detection_returns_none_when_nothing_is_recognisable() -> None:
    assert detect_framework(["weights.bin", "code/inference.py", "model.json"]) is None


@pytest.mark.parametrize(
    ("framework", "version", "region", "image"),
    [
        (
            Framework.SKLEARN,
            "1.2-1",
            "us-east-1",
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        ),
        (
            Framework.XGBOOST,
            "1.7-1",
            "us-east-1",
            "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        ),
        (
            Framework.PYTORCH,
            "2.1",
            "us-east-1",
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310",
        ),
        (
            Framework.TENSORFLOW,
            "2.13",
            "us-east-1",
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu",
        ),
        (
            Framework.SKLEARN,
            None,
            "eu-west-1",
            "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        ),
        (
            Framework.ONNX,
            None,
            "us-west-2",
            "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        ),
    ],
)
def test_image_for_known_frameworks(
    framework: Framework, version: str | None, region: str, image: str
) -> None:
    assert image_for(framework, version, region) == image


def test_every_framework_has_an_image_in_every_required_region() -> None:
    # Given the required regions and every framework and version in the table
    for region in REQUIRED_REGIONS:
        for framework in Framework:
            for version in supported_versions(framework):
                # When an image is asked for
                image = image_for(framework, version, region)

                # Then it is in that region, and framework_from_image recognises it
                assert f".dkr.ecr.{region}.amazonaws.com/" in image
                expected = Framework.SKLEARN if framework is Framework.ONNX else framework
                assert framework_from_image(image) is expected
    assert set(REQUIRED_REGIONS) <= set(supported_regions())


def test_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(
        UnknownFrameworkImage, match="no prebuilt sklearn image known for region 'mars-north-1'"
    ):
        image_for(Framework.SKLEARN, None, "mars-north-1")


def test_unknown_version_lists_the_supported_ones() -> None:
    with pytest.raises(UnknownFrameworkImage) as caught:
        image_for("xgboost", "0.90-2", "us-east-1")
    assert (
        str(caught.value)
        == "no prebuilt image for xgboost version '0.90-2'; supported versions: 1.3-1, 1.5-1, 1.7-1"
    )


@pytest.mark.parametrize(
    "image",
    [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-model:latest",
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/some-other-repo:1",
        # The right repository name in somebody else's account is not the prebuilt image
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "docker.io/library/python:3.11",
    ],
)
def test_custom_images_have_no_framework(image: str) -> None:
    assert framework_from_image(image) is None


def test_the_table_is_plain_json_data() -> None:
    # Given the data file (edited by hand when SageMaker ships new images)
    table = json.loads(IMAGES_FILE.read_text())

    # Then every framework entry names a default that is among its versions
    for name, entry in table["frameworks"].items():
        assert Framework(name)
        assert entry["default_version"] in entry["versions"]


@pytest.mark.parametrize(
    ("framework", "names", "expected"),
    [
        (Framework.SKLEARN, ["model.joblib"], Framework.SKLEARN),
        (Framework.ONNX, ["model.onnx"], Framework.ONNX),
        (Framework.XGBOOST, ["xgboost-model"], Framework.XGBOOST),
        # The image decides when it is a real framework image, even if the files look otherwise
        (Framework.XGBOOST, ["model.pkl"], Framework.XGBOOST),
        (Framework.PYTORCH, ["model.onnx"], Framework.PYTORCH),
    ],
)
def test_serving_framework_from_image_and_files(
    framework: Framework, names: list[str], expected: Framework
) -> None:
    assert serving_framework(image_for(framework, None, "us-east-1"), names) is expected


def test_serving_framework_for_a_custom_image_comes_from_the_files() -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1"
    assert serving_framework(image, ["model.ubj"]) is Framework.XGBOOST
    assert serving_framework(image, ["weights.bin"]) is None


@pytest.mark.parametrize(
    ("names", "found"),
    [
        (["1/saved_model.pb", "1/variables/variables.index"], ["1/saved_model.pb"]),
        (["./iris/20240101/saved_model.pb"], ["iris/20240101/saved_model.pb"]),
        (["saved_model.pb"], []),
        (["export/iris/saved_model.pb"], []),
        (["a/b/1/saved_model.pb"], []),
    ],
)
def test_tensorflow_serving_finds_only_numbered_version_folders(names: list[str], found: list[str]) -> None:
    # TensorFlow Serving: /opt/ml/model/[<name>/]<digits>/saved_model.pb (tfs_utils.py find_models)
    assert tensorflow_saved_models(names) == found


@pytest.mark.parametrize(
    ("names", "loaded"),
    [
        (["model.pt", "other.pt"], "model.pt"),
        (["./net.pth"], "net.pth"),
        (["a.pt", "b.pth"], None),
        (["weights/model.pt"], None),
        (["model.torchscript"], None),
    ],
)
def test_pytorch_default_loader_takes_model_pt_or_the_only_root_file(
    names: list[str], loaded: str | None
) -> None:
    assert pytorch_default_model(names) == loaded


def test_layout_rules_apply_only_where_the_image_has_them() -> None:
    # Given layouts the default loaders cannot use
    # Then TensorFlow is refused even with code (inference.py only pre/post-processes), PyTorch only without
    for framework, files, has_code in (
        (Framework.TENSORFLOW, ["saved_model.pb", "code/inference.py"], True),
        (Framework.PYTORCH, ["a.pt", "b.pt"], False),
    ):
        with pytest.raises(UploadRejected) as refused:
            check_layout(framework, files, has_code)
        assert refused.value.code is RejectionCode.LAYOUT
    # And the layouts the images load pass
    check_layout(Framework.PYTORCH, ["a.pt", "b.pt", "code/inference.py"], True)
    check_layout(Framework.SKLEARN, ["deep/model.joblib"], False)
    check_layout(None, ["saved_model.pb"], False)
