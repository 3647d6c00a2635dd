"""What OnUpload adds so the real images serve the model: env, repacked copy, recorded on the deployment.

moto for S3/DynamoDB/Step Functions, Stubber for the exact CreateModel request; the repacked tarball is
opened and its generated model_fn imported and run here, on the extracted copy.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import boto3
import joblib
import numpy as np
import pytest
import sklearn
from botocore.stub import ANY
from modeldrop.deploy import handle_upload
from modeldrop.events import UploadedObject
from modeldrop.frameworks import image_for
from modeldrop.records import Deployment, DeploymentStatus
from modeldrop.serving_setup import CUSTOM_CODE_ON_SKLEARN_NOTE, ONNX_REQUIREMENTS
from modeldrop.tarball import TarballLimits, safe_extract
from modeldrop_local import example_models
from modeldrop_local.example_models.iris import fit_logistic, iris_data

from tests.unit.pipeline.conftest import (
    ROLE_ARN,
    Stack,
    StubbedSageMaker,
    deploy_dependencies,
    expect_registration,
    regular,
    tarball,
)
from tests.unit.pipeline.template_resources import REGION

KEY = "models/iris/model.tar.gz"
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/modeldrop-iris"
SDK_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    "SAGEMAKER_REGION": REGION,
}


def upload(stack: Stack, body: bytes) -> UploadedObject:
    stored = stack.put_object(KEY, body)
    return UploadedObject(bucket=stack.bucket, key=KEY, object_version=stored["version"], etag=stored["etag"])


def expect_deployment(sagemaker: StubbedSageMaker, image: str, environment: dict[str, str] | None) -> None:
    """CreateModel with exactly this image and environment (none: no Environment key at all)."""
    container: dict[str, Any] = {"Image": image, "ModelDataUrl": ANY}
    if environment is not None:
        container["Environment"] = environment
    sagemaker.stubber.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:{REGION}:123456789012:model/modeldrop-iris-v1"},
        {
            "ModelName": "modeldrop-iris-v1",
            "PrimaryContainer": container,
            "ExecutionRoleArn": ROLE_ARN,
            "Tags": ANY,
        },
    )
    sagemaker.stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint-config/modeldrop-iris-v1"},
    )
    expect_registration(sagemaker)
    sagemaker.stubber.add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message="Could not find endpoint",
    )
    sagemaker.stubber.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN})


def deploy(stack: Stack, sagemaker: StubbedSageMaker, body: bytes) -> tuple[Deployment, bytes, list[str]]:
    """Run OnUpload; the deployment record, the pinned copy's bytes and the S3 operations it used."""
    uploaded = upload(stack, body)
    dependencies = deploy_dependencies(stack, sagemaker)
    operations: list[str] = []
    dependencies.s3.meta.events.register("before-call.s3.*", lambda model, **_: operations.append(model.name))
    outcome = handle_upload(uploaded, dependencies)
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.status is DeploymentStatus.DEPLOYING, outcome.reason
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.model_data_key is not None
    s3 = boto3.client("s3", region_name=REGION)
    pinned = s3.get_object(Bucket=stack.bucket, Key=record.model_data_key)["Body"].read()
    return record, pinned, operations


def members(body: bytes, tmp_path: Path) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        return {
            info.name: (archive.extractfile(info).read() if info.isreg() else b"")  # type: ignore[union-attr]
            for info in archive.getmembers()
        }


def import_handlers(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"generated_{abs(hash(str(path)))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bare_sklearn_model_is_repacked_with_a_model_fn_that_loads_it(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given the iris model.joblib alone, as the real scikit-learn image cannot serve it (no default model_fn)
    body = example_models.build_sklearn_iris(tmp_path / "bare", with_handler=False).read_bytes()
    expect_deployment(sagemaker, image_for("sklearn", None, REGION), SDK_ENVIRONMENT)

    # When OnUpload deploys it
    record, pinned, operations = deploy(stack, sagemaker, body)

    # Then the pinned copy is the original plus code/inference.py, written by a streamed upload, not a copy
    found = members(pinned, tmp_path)
    original = members(body, tmp_path)
    assert sorted(found) == ["code", "code/inference.py", "model.joblib"]
    assert found["model.joblib"] == original["model.joblib"]
    assert "CopyObject" not in operations and "PutObject" in operations
    # And the generated handler is Python 3.8 and has only model_fn (the container's defaults do the rest)
    source = found["code/inference.py"].decode()
    tree = ast.parse(source, feature_version=(3, 8))
    assert [node.name for node in tree.body if isinstance(node, ast.FunctionDef)] == ["model_fn"]
    # And its model_fn really loads the model: the same predictions as the model loaded here
    model_dir = tmp_path / "model"
    safe_extract(io.BytesIO(pinned), model_dir)
    served = import_handlers(model_dir / "code" / "inference.py").model_fn(str(model_dir))
    rows = np.asarray(example_models.iris_payload(30))
    expected = joblib.load(model_dir / "model.joblib").predict(rows)
    assert served.predict(rows).tolist() == expected.tolist()
    # And the record says what was added, and the config holds what CreateModel got
    assert record.serving_setup is not None and record.serving_setup.model_dump(by_alias=True) == {
        "repacked": True,
        "addedFiles": ["code/inference.py"],
        "leftOutFiles": [],
        "environment": SDK_ENVIRONMENT,
        "notes": [
            "the sklearn image has no default loader for this model: added code/inference.py "
            "(your own code/inference.py is never replaced)"
        ],
    }
    assert record.config is not None and record.config.environment == SDK_ENVIRONMENT


def test_a_pickle_artifact_gets_a_pickle_loader(tmp_path: Path) -> None:
    # Given a model saved with pickle, not joblib
    import pickle

    from modeldrop.serving_setup import sklearn_inference_py

    model = fit_logistic()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "clf.pkl").write_bytes(pickle.dumps(model))
    (tmp_path / "inference.py").write_bytes(sklearn_inference_py("models/clf.pkl"))

    # When the generated model_fn loads it
    loaded = import_handlers(tmp_path / "inference.py").model_fn(str(tmp_path))

    # Then it is the model, found by its relative path
    rows = np.asarray(example_models.iris_payload(10))
    assert loaded.predict(rows).tolist() == model.predict(rows).tolist()


def test_users_own_inference_py_is_kept_byte_for_byte_and_copied_server_side(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given a tarball with the user's code/inference.py and an environment that overrides one SDK key
    body = example_models.build_custom_inference(
        tmp_path, config={"environment": {"SAGEMAKER_CONTAINER_LOG_LEVEL": "10", "LOG_LEVEL": "debug"}}
    ).read_bytes()
    environment = SDK_ENVIRONMENT | {"SAGEMAKER_CONTAINER_LOG_LEVEL": "10", "LOG_LEVEL": "debug"}
    expect_deployment(sagemaker, image_for("sklearn", None, REGION), environment)

    # When OnUpload deploys it
    record, pinned, operations = deploy(stack, sagemaker, body)

    # Then the upload is deployed byte for byte by one server-side copy, the user's value won key by key
    assert pinned == body
    assert operations.count("CopyObject") == 1
    assert members(pinned, tmp_path)["code/inference.py"] == example_models.CUSTOM_INFERENCE_PY.encode()
    assert record.serving_setup is not None
    assert record.serving_setup.repacked is False
    assert record.serving_setup.environment == {
        key: value for key, value in SDK_ENVIRONMENT.items() if key != "SAGEMAKER_CONTAINER_LOG_LEVEL"
    }


def test_bare_onnx_model_gets_the_onnx_handler_and_a_py38_onnxruntime(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given model.onnx alone (hosted on the scikit-learn image, which cannot load it by itself)
    body = example_models.build_onnx_iris(tmp_path / "bare", with_handler=False).read_bytes()
    expect_deployment(sagemaker, image_for("onnx", None, REGION), SDK_ENVIRONMENT)

    # When OnUpload deploys it
    record, pinned, _ = deploy(stack, sagemaker, body)

    # Then the copy carries modeldrop's ONNX handler and requirements pinning onnxruntime for Python 3.8
    found = members(pinned, tmp_path)
    assert sorted(found) == ["code", "code/inference.py", "code/requirements.txt", "model.onnx"]
    assert found["code/requirements.txt"] == ONNX_REQUIREMENTS.encode()
    assert 'onnxruntime==1.19.2; python_version < "3.9"' in ONNX_REQUIREMENTS
    ast.parse(found["code/inference.py"].decode(), feature_version=(3, 8))
    # And the handler serves the model as the in-process ONNX model does
    rows = example_models.iris_payload(20)
    repacked = tmp_path / "repacked.tar.gz"
    repacked.write_bytes(pinned)
    bare = tmp_path / "bare" / "model.tar.gz"
    assert example_models.predict_in_process(repacked, rows) == example_models.predict_in_process(bare, rows)
    assert record.serving_setup is not None
    assert record.serving_setup.added_files == ["code/inference.py", "code/requirements.txt"]


def test_xgboost_copy_leaves_out_modeldrop_json_and_gets_no_environment(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given an XGBoost booster with its modeldrop.json at the root (the image would load it as a booster)
    body = example_models.build_xgboost_iris(tmp_path, config={"max_concurrency": 5}).read_bytes()
    expect_deployment(sagemaker, image_for("xgboost", None, REGION), None)

    # When OnUpload deploys it
    record, pinned, _ = deploy(stack, sagemaker, body)

    # Then the config was read (max_concurrency) but not shipped; the booster is byte for byte the same
    found = members(pinned, tmp_path)
    assert sorted(found) == ["xgboost-model"]
    assert found["xgboost-model"] == members(body, tmp_path)["xgboost-model"]
    assert record.config is not None and record.config.max_concurrency == 5
    assert record.serving_setup is not None
    assert record.serving_setup.left_out_files == ["modeldrop.json"]
    assert record.serving_setup.environment == {}


def test_xgboost_with_inference_code_gets_the_sdk_environment(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given a booster and the user's code/inference.py (script mode instead of the built-in algorithm)
    body = tarball(
        [
            regular("xgboost-model", b"booster"),
            regular("code/inference.py", b"def model_fn(model_dir):\n    return model_dir\n"),
        ]
    )
    expect_deployment(sagemaker, image_for("xgboost", None, REGION), SDK_ENVIRONMENT)

    # When OnUpload deploys it
    _, pinned, operations = deploy(stack, sagemaker, body)

    # Then SAGEMAKER_PROGRAM and friends are set and the tarball is copied unchanged
    assert pinned == body
    assert operations.count("CopyObject") == 1


def test_custom_code_without_a_known_artifact_is_served_on_the_sklearn_image(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given code/inference.py plus weights.npz, which no framework claims (once refused: framework needed)
    body = example_models.build_custom_weights(tmp_path).read_bytes()
    expect_deployment(sagemaker, image_for("sklearn", None, REGION), SDK_ENVIRONMENT)

    # When OnUpload deploys it
    record, pinned, _ = deploy(stack, sagemaker, body)

    # Then it goes to the scikit-learn image unchanged, and the record says why that image
    assert pinned == body
    assert record.config is not None and record.config.framework == "sklearn"
    assert record.serving_setup is not None
    assert CUSTOM_CODE_ON_SKLEARN_NOTE in record.serving_setup.notes
    assert CUSTOM_CODE_ON_SKLEARN_NOTE == (
        "no artifact recognised; served on the scikit-learn image, "
        "set framework in modeldrop.json to choose another"
    )
    # And its handlers really predict iris
    answer = example_models.predict_in_process(tmp_path / "model.tar.gz", example_models.iris_payload(30))
    assert sum(a == t for a, t in zip(answer, example_models.iris_targets(30), strict=True)) >= 28


def test_custom_code_with_a_framework_in_modeldrop_json_goes_to_that_image(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given the same custom code, with modeldrop.json choosing PyTorch
    body = example_models.build_custom_weights(tmp_path, config={"framework": "pytorch"}).read_bytes()
    expect_deployment(sagemaker, image_for("pytorch", None, REGION), SDK_ENVIRONMENT)

    # When OnUpload deploys it
    record, _, _ = deploy(stack, sagemaker, body)

    # Then the PyTorch image serves it, and no note claims a default
    assert record.serving_setup is not None
    assert CUSTOM_CODE_ON_SKLEARN_NOTE not in record.serving_setup.notes


def test_tensorflow_and_custom_images_get_nothing_added(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given a SavedModel in a numbered version folder
    body = tarball([regular("1/saved_model.pb", b"pb"), regular("1/variables/variables.index", b"i")])
    expect_deployment(sagemaker, image_for("tensorflow", None, REGION), None)

    # When OnUpload deploys it
    record, pinned, _ = deploy(stack, sagemaker, body)

    # Then no environment and no change
    assert pinned == body
    assert record.serving_setup is not None and record.serving_setup.model_dump(by_alias=True) == {
        "repacked": False,
        "addedFiles": [],
        "leftOutFiles": [],
        "environment": {},
        "notes": [],
    }


def test_numpy2_recorded_without_evidence_in_the_pickle_is_warned_about(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given a model recorded as saved under numpy 2 and scikit-learn 1.5, whose pickle names no numpy
    # module (joblib writes a LogisticRegression's arrays itself: it loads on numpy 1.24)
    libraries = json.dumps({"python": "3.11.9", "scikit-learn": "1.5.2", "numpy": "2.1.3"}).encode()
    model = joblib_bytes(tmp_path)
    body = tarball([regular("model.joblib", model), regular("code/modeldrop-libraries.json", libraries)])
    expect_deployment(sagemaker, image_for("sklearn", None, REGION), SDK_ENVIRONMENT)

    # When OnUpload deploys it
    record, _, _ = deploy(stack, sagemaker, body)

    # Then the deployment carries the warnings, with the gap named: the scikit-learn version is the one the
    # pickle itself stores (_sklearn_version, read from its opcodes), not the one recorded beside it
    assert record.serving_setup is not None
    warnings = [note for note in record.serving_setup.notes if note.startswith("warning:")]
    assert warnings == [
        "warning: saved with numpy 2.1.3; the sklearn 1.2-1 image has numpy 1.24.1: a pickle that "
        "references numpy._core fails its health check there (No module named 'numpy._core'). "
        "Save the model with numpy<2",
        f"warning: model.joblib was saved with scikit-learn {sklearn.__version__}; the image has 1.2.1: "
        "scikit-learn loads pickles only from the same version reliably. Save the model with "
        "scikit-learn==1.2.1 or choose a matching framework_version",
    ]


def test_a_pickle_that_references_numpy_core_is_refused_for_the_numpy1_image(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given a model whose recorded pickle references numpy._core (a numpy 2 forest, as packaging finds it)
    libraries = json.dumps(
        {"numpy": "2.4.6", "scikit-learn": "1.9.1", "pickled-numpy-module": "numpy._core"}
    ).encode()
    body = tarball(
        [regular("model.joblib", joblib_bytes(tmp_path)), regular("code/modeldrop-libraries.json", libraries)]
    )

    # When OnUpload reads it (nothing is created in SageMaker: no stubbed response is consumed)
    outcome = handle_upload(upload(stack, body), deploy_dependencies(stack, sagemaker))

    # Then it is refused, saying why the image cannot load it and what to do
    assert outcome.status is DeploymentStatus.REJECTED
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.reason == (
        "the pickle references numpy._core (it was written under numpy 2.4.6); the sklearn 1.2-1 image has "
        "numpy 1.24.1, which cannot unpickle it (No module named 'numpy._core'): the endpoint would fail "
        "its health check. Pickle the model with numpy<2 (the image's versions: numpy==1.24.1, "
        "scikit-learn==1.2.1), or deploy it on an image that has numpy 2 (image in modeldrop.json)"
    )


def test_a_numpy2_pickle_dropped_without_packaging_is_refused_from_its_own_opcodes(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given a forest pickled here (numpy 2, whose tree state names numpy._core), dropped as a bare
    # model.joblib: no code/modeldrop-libraries.json says anything of it
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(*iris_data())
    joblib.dump(forest, tmp_path / "forest.joblib")
    body = tarball([regular("model.joblib", (tmp_path / "forest.joblib").read_bytes())])

    # When OnUpload reads it (nothing is created in SageMaker: no stubbed response is consumed)
    outcome = handle_upload(upload(stack, body), deploy_dependencies(stack, sagemaker))

    # Then it is Rejected naming the file, the versions and the fix, before any SageMaker call
    assert outcome.status is DeploymentStatus.REJECTED
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.reason == (
        "model.joblib references numpy._core (it was written under numpy 2); the sklearn 1.2-1 image has "
        "numpy 1.24.1, which cannot unpickle it (No module named 'numpy._core'): the endpoint would fail "
        "its health check. Pickle the model with numpy<2 (the image's versions: numpy==1.24.1, "
        "scikit-learn==1.2.1), or deploy it on an image that has numpy 2 (image in modeldrop.json)"
    )


def test_a_compressed_joblib_model_is_deployed_with_a_note_that_it_was_not_read(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given a model saved with joblib.dump(..., compress=3): its pickle is zlib data
    joblib.dump(fit_logistic(), tmp_path / "m.joblib", compress=3)
    body = tarball([regular("model.joblib", (tmp_path / "m.joblib").read_bytes())])
    expect_deployment(sagemaker, image_for("sklearn", None, REGION), SDK_ENVIRONMENT)

    # When OnUpload deploys it
    record, _, _ = deploy(stack, sagemaker, body)

    # Then the record says its versions could not be checked, and how to make them checkable
    assert record.serving_setup is not None
    assert (
        "model.joblib is compressed (zlib): its pickle could not be read, so the library versions it needs "
        "were not checked against the image. Save it uncompressed to have them checked: "
        "joblib.dump(model, path, compress=0) (joblib's default)"
    ) in record.serving_setup.notes


def test_handler_code_newer_than_the_image_python_is_refused(
    stack: Stack, sagemaker: StubbedSageMaker, tmp_path: Path
) -> None:
    # Given a model whose code/inference.py uses match (Python 3.10) for the scikit-learn 1.2-1 image
    code = b"def model_fn(model_dir):\n    match model_dir:\n        case _:\n            return None\n"
    body = tarball([regular("model.joblib", joblib_bytes(tmp_path)), regular("code/inference.py", code)])

    # When OnUpload reads it
    outcome = handle_upload(upload(stack, body), deploy_dependencies(stack, sagemaker))

    # Then it is Rejected naming the file, the line and the image's Python; SageMaker was not called
    assert outcome.status is DeploymentStatus.REJECTED
    sagemaker.stubber.assert_no_pending_responses()
    assert outcome.reason == (
        "code/inference.py line 2: Pattern matching is only supported in Python 3.10 and greater; the "
        "sklearn 1.2-1 image runs Python 3.9: write the code for Python 3.9, or choose an image with a newer "
        "Python"
    )


def joblib_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "m.joblib"
    joblib.dump(fit_logistic(), path)
    return path.read_bytes()


@pytest.mark.parametrize("shape", ["sklearn", "onnx"])
def test_packaged_examples_record_the_packaging_versions(tmp_path: Path, shape: str) -> None:
    # Given an example built with modeldrop's packaging
    build = example_models.build_sklearn_iris if shape == "sklearn" else example_models.build_onnx_iris
    path = build(tmp_path)

    # When extracted
    model_dir = tmp_path / "model"
    with path.open("rb") as stream:
        safe_extract(stream, model_dir, TarballLimits())

    # Then code/modeldrop-libraries.json names the versions the model was made with: the scikit-learn
    # 1.2-1 image's for the pickle (trained in its pinned environment), this environment's for ONNX
    recorded = json.loads((model_dir / "code" / "modeldrop-libraries.json").read_text())
    if shape == "sklearn":
        assert (recorded["numpy"], recorded["scikit-learn"]) == ("1.24.1", "1.2.1")
        assert recorded.get("pickled-numpy-module") in (None, "numpy.core")
    else:
        assert recorded["numpy"] == np.__version__
    assert set(recorded) >= {"python", "numpy"}
