"""Conformance (issue 8 item 4): every row of tests/conformance/cases.py deployed on the local SageMaker
through boto3 and compared with the row's expected outcome (written from the real container's source),
and, for the scikit-learn image, with the real serving stack run in-process on the same tarball
(tests/conformance/oracle.py under .venv-oracle): status, body bytes and Content-Type, byte for byte.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import joblib
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from modeldrop_local.example_models import (
    build_onnx_iris,
    build_sklearn_iris,
    build_xgboost_iris,
    iris_sample,
)
from modeldrop_local.example_models.iris import iris_data

from tests.conformance.cases import DEPLOYMENTS, PENDING, Deployment, Invoke
from tests.standalone_sagemaker import (
    ROLE_ARN,
    Cloud,
    run_json,
    standalone_cloud,
    venv_python,
    wait_until_settled,
)

pytestmark = pytest.mark.sdk

BUCKET = "conformance"
HERE = Path(__file__).parent
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with standalone_cloud(tmp_path_factory.mktemp("conformance-state"), idle_timeout_s=30.0) as running:
        yield running


# ------------------------------------------------------------------------------- shapes and bodies
def _artifacts(build: Path) -> dict[str, Path]:
    """One real artifact per kind, extracted from the example builders' tarballs."""
    out = {}
    builders: dict[str, Callable[[Path], Path]] = {
        # The bare artifacts: the builders add the handler code the images need unless told not to.
        "sklearn": lambda dest: build_sklearn_iris(dest, with_handler=False),
        "onnx": lambda dest: build_onnx_iris(dest, with_handler=False),
        "xgboost": build_xgboost_iris,
    }
    for kind, builder in builders.items():
        tarball = builder(build / f"{kind}-src")
        with tarfile.open(tarball) as archive:
            (member,) = [m for m in archive.getmembers() if m.isfile()]
            archive.extract(member, build / kind, filter="data")
            out[kind] = build / kind / member.name
    # A forest pickled here, under numpy 2 and scikit-learn 1.9: its tree state references numpy._core.
    from sklearn.ensemble import RandomForestClassifier

    (build / "sklearn_numpy2").mkdir()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(*iris_data())
    joblib.dump(forest, build / "sklearn_numpy2" / "model.joblib")
    out["sklearn_numpy2"] = build / "sklearn_numpy2" / "model.joblib"
    np.save(build / "weights.npy", np.arange(12.0).reshape(3, 4))
    out["weights_npy"] = build / "weights.npy"
    return out


def _tarball(deployment: Deployment, artifacts: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        artifact = artifacts[deployment.artifact]
        archive.add(artifact, arcname=artifact.name)
        if deployment.code is not None:
            data = deployment.code.encode()
            member = tarfile.TarInfo(f"code/{deployment.program}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


ROWS = iris_sample()


def request_body(kind: str) -> bytes:
    if kind == "json_rows":
        return json.dumps(ROWS).encode()
    if kind == "json_instances":
        return json.dumps({"instances": ROWS}).encode()
    if kind == "csv_rows":
        return "\n".join(",".join(repr(value) for value in row) for row in ROWS).encode()
    if kind == "csv_one_row":
        return ",".join(repr(value) for value in ROWS[0]).encode()
    if kind == "npy_rows":
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(ROWS))
        return buffer.getvalue()
    if kind == "recordio_rows":
        return _sdk_recordio(ROWS)
    raise AssertionError(f"unknown body {kind}")


_RECORDIO_SCRIPT = """
import io, json, sys
import numpy as np
from sagemaker.amazon.common import write_numpy_to_dense_tensor
buffer = io.BytesIO()
write_numpy_to_dense_tensor(buffer, np.array(json.load(sys.stdin), dtype="float32"))
open(sys.argv[1], "wb").write(buffer.getvalue())
"""


def _sdk_recordio(rows: list[list[float]]) -> bytes:
    """The rows as the SageMaker Python SDK's RecordSerializer writes them (dense float32 Records).

    Written to a file: importing sagemaker prints its config notices on stdout.
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="modeldrop-recordio-") as tmp:
        out = Path(tmp) / "body.rec"
        subprocess.run(
            [str(venv_python(".venv-sdk")), "-c", _RECORDIO_SCRIPT, str(out)],
            input=json.dumps(rows).encode(),
            capture_output=True,
            check=True,
            env={"SAGEMAKER_SUPPRESS_V2_WARNING": "1", "PATH": "/usr/bin:/bin"},
            timeout=240,
        )
        return out.read_bytes()


def expected_body(name: str, artifacts: dict[str, Path]) -> bytes:
    """The named body, from the model itself: what the image's encoder makes of its predictions."""
    function, _, argument = name.partition("(")
    argument = argument.rstrip(")")
    if function == "joined":
        import xgboost

        booster = xgboost.Booster(model_file=str(artifacts["xgboost"]))
        predictions = booster.predict(xgboost.DMatrix(np.asarray(ROWS, dtype=float)))
        return ",".join(map(str, predictions.tolist())).encode()
    model = joblib.load(artifacts["sklearn"])
    # The image casts JSON and CSV to float32 before predict_fn (serving.py default_input_fn).
    labels = model.predict(np.asarray(ROWS, dtype=np.float32))
    if function == "json":
        return json.dumps(labels.tolist()).encode()
    if function == "csv":
        return "".join(f"{label}\n" for label in labels.tolist()).encode()
    if function == "npy":
        buffer = io.BytesIO()
        np.save(buffer, model.predict(np.asarray(ROWS)))  # NPY is not cast
        return buffer.getvalue()
    if function == "transform":  # TRANSFORM_FN: float rows, the Accept it was handed
        labels, accept = model.predict(np.asarray(ROWS, dtype=float)), argument.split(", ")[1]
        return json.dumps({"labels": labels.tolist(), "accept": accept}).encode()
    if function == "labels_object":
        return json.dumps({"labels": labels.tolist()}).encode()
    raise AssertionError(f"unknown body {name}")


# -------------------------------------------------------------------------------- the two sides
def _invoke_local(runtime: Any, name: str, invoke: Invoke) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "EndpointName": name,
        "Body": request_body(invoke.body),
        "ContentType": invoke.content_type,
    }
    if invoke.accept is not None:
        arguments["Accept"] = invoke.accept
    try:
        response = runtime.invoke_endpoint(**arguments)
    except ClientError as error:
        details = error.response
        if details["Error"]["Code"] == "ModelError":
            return {"status": details.get("OriginalStatusCode"), "error": details.get("OriginalMessage")}
        return {"status": f"front:{details['Error']['Code']}", "error": details["Error"].get("Message")}
    return {"status": 200, "content_type": response["ContentType"], "body": response["Body"].read()}


@pytest.fixture(scope="module")
def outcomes(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every deployment on the local SageMaker (all created first, so they start in parallel), and the
    oracle's answers for the rows it can run."""
    build = tmp_path_factory.mktemp("conformance-build")
    artifacts = _artifacts(build)
    s3 = boto3.client("s3", endpoint_url=cloud.s3_url, region_name="us-east-1")
    sm: Any = boto3.client(
        "sagemaker", endpoint_url=cloud.sagemaker_url, region_name="us-east-1", config=CLIENT_CONFIG
    )
    runtime = boto3.client(
        "sagemaker-runtime", endpoint_url=cloud.sagemaker_url, region_name="us-east-1", config=CLIENT_CONFIG
    )
    s3.create_bucket(Bucket=BUCKET)
    oracle_cases = []
    for deployment in DEPLOYMENTS:
        tarball = _tarball(deployment, artifacts)
        s3.put_object(Bucket=BUCKET, Key=f"{deployment.id}/model.tar.gz", Body=tarball)
        container: dict[str, Any] = {
            "Image": deployment.image,
            "ModelDataUrl": f"s3://{BUCKET}/{deployment.id}/model.tar.gz",
            "Environment": deployment.env,
        }
        sm.create_model(ModelName=deployment.id, PrimaryContainer=container, ExecutionRoleArn=ROLE_ARN)
        sm.create_endpoint_config(
            EndpointConfigName=deployment.id,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": deployment.id,
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
                }
            ],
        )
        sm.create_endpoint(EndpointName=deployment.id, EndpointConfigName=deployment.id)
        if deployment.oracle:
            base = build / "oracle" / deployment.id / "opt" / "ml"
            (base / "model").mkdir(parents=True)
            with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
                archive.extractall(base / "model", filter="data")
            oracle_cases.append(
                {
                    "id": deployment.id,
                    "base_dir": str(base),
                    "env": deployment.env,
                    "requests": [
                        {
                            "content_type": invoke.content_type,
                            "accept": invoke.accept,
                            "body_b64": base64.b64encode(request_body(invoke.body)).decode(),
                        }
                        for invoke in deployment.invokes
                    ],
                }
            )
    oracle = run_json(venv_python(".venv-oracle"), HERE / "oracle.py", oracle_cases, {}, 180)
    local: dict[str, Any] = {}
    for deployment in DEPLOYMENTS:
        description = wait_until_settled(sm, deployment.id, timeout_s=120.0)
        answers = (
            [_invoke_local(runtime, deployment.id, invoke) for invoke in deployment.invokes]
            if description["EndpointStatus"] == "InService"
            else []
        )
        local[deployment.id] = {
            "status": description["EndpointStatus"],
            "reason": description.get("FailureReason") or "",
            "answers": answers,
        }
    return {"local": local, "oracle": oracle, "artifacts": artifacts}


# ----------------------------------------------------------------------------------------- tests
def _expected_answer(invoke: Invoke, artifacts: dict[str, Path]) -> dict[str, Any]:
    if invoke.status != 200:
        return {"status": invoke.status}
    assert invoke.response is not None
    return {
        "status": 200,
        "content_type": invoke.response_type,
        "body": expected_body(invoke.response, artifacts),
    }


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """Status always; Content-Type and body bytes of a 200 (error bodies are each stack's own prose)."""
    if answer["status"] != 200:
        return {"status": answer["status"]}
    return {"status": 200, "content_type": answer["content_type"], "body": answer["body"]}


ORACLE_ROWS = [d for d in DEPLOYMENTS if d.oracle]


@pytest.mark.parametrize("deployment", ORACLE_ROWS, ids=[d.id for d in ORACLE_ROWS])
def test_oracle_agrees_with_the_table(deployment: Deployment, outcomes: dict[str, Any]) -> None:
    """The real serving stack does what the table says (a check on our reading of the source)."""
    oracle = outcomes["oracle"][deployment.id]
    assert "harness_error" not in oracle, oracle.get("harness_error")
    assert (oracle["ping"] == 200) is deployment.in_service, oracle["error"]
    for invoke, answer in zip(deployment.invokes, oracle["responses"], strict=True):
        actual = {
            "status": answer["status"],
            "content_type": answer["content_type"],
            "body": base64.b64decode(answer["body_b64"]),
        }
        assert _comparable(actual) == _expected_answer(invoke, outcomes["artifacts"]), invoke.name


def _row_params() -> list[Any]:
    params = []
    for deployment in DEPLOYMENTS:
        rows: list[tuple[int | None, str]] = [(None, f"{deployment.id}/deploy")]
        rows += [(index, f"{deployment.id}/{invoke.name}") for index, invoke in enumerate(deployment.invokes)]
        for index, row_id in rows:
            marks = [pytest.mark.fidelity_pending] if row_id in PENDING else []
            params.append(pytest.param(deployment, index, id=row_id, marks=marks))
    return params


@pytest.mark.parametrize(("deployment", "index"), _row_params())
def test_local_sagemaker_matches_the_real_container(
    deployment: Deployment, index: int | None, outcomes: dict[str, Any]
) -> None:
    local = outcomes["local"][deployment.id]
    if index is None:
        expected_status = "InService" if deployment.in_service else "Failed"
        assert local["status"] == expected_status, (
            f"{local['status']}: {local['reason']} ({deployment.source})"
        )
        for word in deployment.reason_mentions:
            assert word in local["reason"], f"FailureReason should name {word!r}: {local['reason']!r}"
        return
    assert local["status"] == "InService", f"not served: {local['status']}: {local['reason']}"
    invoke = deployment.invokes[index]
    expected = _expected_answer(invoke, outcomes["artifacts"])
    if deployment.oracle:  # the real stack's own bytes, not only our reading of it
        answer = outcomes["oracle"][deployment.id]["responses"][index]
        expected = _comparable(
            {
                "status": answer["status"],
                "content_type": answer["content_type"],
                "body": base64.b64decode(answer["body_b64"]),
            }
        )
    assert _comparable(local["answers"][index]) == expected, (
        f"{invoke.source}; local said {local['answers'][index]}"
    )
