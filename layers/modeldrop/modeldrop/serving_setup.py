"""What OnUpload adds to a model so that the real prebuilt SageMaker image can serve it.

Three things, decided here from the tarball report and the resolved config (no I/O):
  - the container environment per image family (ENVIRONMENT_RULES, data with its sources);
  - the generated handler code for images that have no default loader for the artifact
    (scikit-learn joblib/pickle and ONNX, both on the scikit-learn image), added only when the tarball
    has no code/inference.py of its own: the user's code is never replaced;
  - the root files left out for the XGBoost image in algorithm mode (it loads every root file).
When none of that changes the files, the upload is deployed byte for byte (one server-side copy);
otherwise repack.py writes the deployed copy. The plan is recorded on the deployment (SetupRecord).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from modeldrop.code_checks import check_code_syntax
from modeldrop.frameworks import Framework, artifact_framework
from modeldrop.image_libraries import PICKLED_NUMPY_KEY, check_versions, image_libraries, pickle_evidence
from modeldrop.model_config import ModelConfig, ResolvedConfig
from modeldrop.records import SetupRecord
from modeldrop.rejection import RejectionCode, UploadRejected
from modeldrop.tarball import (
    CONFIG_MEMBER,
    INFERENCE_CODE_MEMBER,
    MAX_CODE_FILE_BYTES,
    REQUIREMENTS_MEMBER,
    TarballReport,
)

CODE_DIR = "code"
# The SDK's repacked layout: code/ inside the model, extracted to /opt/ml/model/code.
SUBMIT_DIRECTORY = "/opt/ml/model/code"
ONNX_HANDLER_FILE = Path(__file__).with_name("onnx_handler.py")
# The scikit-learn 1.2-1 image ran Python 3.8 before its rebuild on 3.9 (image_libraries.py): for 3.8,
# onnxruntime 1.19.2 is the newest release with cp38 wheels
# (manylinux_2_27 x86_64; 1.20 dropped 3.8) and needs numpy>=1.21.6 (the 1.2-1 image has 1.24.1). The
# second line, for newer Pythons (the local SageMaker's), takes what is installed there.
ONNX_REQUIREMENTS = (
    'onnxruntime==1.19.2; python_version < "3.9"\nonnxruntime>=1.16; python_version >= "3.9"\n'
)


class EnvRule(StrEnum):
    ALWAYS = "always"  # the image needs the user module named (a handler is always there after repack)
    WITH_CODE = "with_code"  # only when the tarball has code/inference.py (else a built-in mode runs)
    NEVER = "never"


@dataclass(frozen=True)
class EnvironmentRule:
    rule: EnvRule
    source: str


# Which image family gets the SageMaker Python SDK's script-mode variables, and why. The variables are
# those the SDK v2 sets on a repacked model (aws/sagemaker-python-sdk src/sagemaker/model.py
# Model._script_mode_env_vars / prepare_container_def, src/sagemaker/sklearn/model.py): SAGEMAKER_PROGRAM,
# SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code (repacked), SAGEMAKER_CONTAINER_LOG_LEVEL=20 (logging.INFO),
# SAGEMAKER_REGION.
ENVIRONMENT_RULES: dict[Framework, EnvironmentRule] = {
    Framework.SKLEARN: EnvironmentRule(
        EnvRule.ALWAYS,
        "aws/sagemaker-scikit-learn-container src/sagemaker_sklearn_container/serving.py (v1.2-1) on "
        "sagemaker-containers _env.py: the user module comes from SAGEMAKER_PROGRAM (no default) in "
        "SAGEMAKER_SUBMIT_DIRECTORY (default /opt/ml/code); default_model_fn raises NotImplementedError",
    ),
    Framework.XGBOOST: EnvironmentRule(
        EnvRule.WITH_CODE,
        "aws/sagemaker-xgboost-container src/sagemaker_xgboost_container/serving.py: without "
        "SAGEMAKER_PROGRAM the built-in algorithm serves and code/ is ignored",
    ),
    Framework.PYTORCH: EnvironmentRule(
        EnvRule.WITH_CODE,
        "aws/sagemaker-inference-toolkit src/sagemaker_inference/environment.py (module inference.py in "
        "/opt/ml/model/code by default); set as the SDK's PyTorchModel does when code is present",
    ),
    Framework.TENSORFLOW: EnvironmentRule(
        EnvRule.NEVER,
        "aws/sagemaker-tensorflow-serving-container: TensorFlow Serving reads the SavedModel; the SDK's "
        "TensorFlowModel sets none of these variables",
    ),
}


def sdk_environment(region: str) -> dict[str, str]:
    return {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": SUBMIT_DIRECTORY,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": region,
    }


def parse_libraries(raw: bytes | None) -> tuple[dict[str, str], str | None]:
    """code/modeldrop-libraries.json as {name: version}; a problem is a warning, never a rejection."""
    if raw is None:
        return {}, None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return {}, f"code/modeldrop-libraries.json is not valid JSON ({error}); versions not checked"
    if not isinstance(document, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in document.items()
    ):
        return (
            {},
            "code/modeldrop-libraries.json must map library names to version strings; versions not checked",
        )
    return dict(document), None


# ---------------------------------------------------------------- generated handler code
# Runs in the image's Python (3.9 on scikit-learn 1.2-1, 3.8 before its rebuild): no match, no X | Y outside
# annotations, nothing from the 3.9+ standard library. Only model_fn: the container's default input_fn,
# predict_fn (model.predict) and output_fn serve the rest, as they would for an SDK-repacked model.
_SKLEARN_MODEL_FN = '''\
"""Generated by modeldrop for the SageMaker scikit-learn image, which has no default model_fn.

It loads {artifact!r}; the container's default input_fn, predict_fn (model.predict) and
output_fn do the rest. Replace it by shipping your own code/inference.py.
"""

import os

MODEL_FILE = {artifact!r}


def model_fn(model_dir):
    {loader}
'''
_JOBLIB_LOADER = "import joblib\n\n    return joblib.load(os.path.join(model_dir, MODEL_FILE))"
_PICKLE_LOADER = (
    'import pickle\n\n    with open(os.path.join(model_dir, MODEL_FILE), "rb") as model_file:\n'
    "        return pickle.load(model_file)"
)


def sklearn_inference_py(artifact: str) -> bytes:
    """code/inference.py whose model_fn loads `artifact` (a path relative to the model root)."""
    loader = _JOBLIB_LOADER if artifact.lower().endswith(".joblib") else _PICKLE_LOADER
    return _SKLEARN_MODEL_FN.format(artifact=artifact, loader=loader).encode()


def onnx_code() -> dict[str, bytes]:
    return {
        INFERENCE_CODE_MEMBER: ONNX_HANDLER_FILE.read_bytes(),
        REQUIREMENTS_MEMBER: ONNX_REQUIREMENTS.encode(),
    }


def choose_sklearn_artifact(artifacts: list[str]) -> str | None:
    """The scikit-learn artifact a generated model_fn loads: the only one, else model.* at the root."""
    candidates = [name for name in artifacts if artifact_framework(name) is Framework.SKLEARN]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    named_model = [name for name in candidates if "/" not in name and posixpath.splitext(name)[0] == "model"]
    return named_model[0] if named_model else candidates[0]


def handler_code(framework: Framework | None, report: TarballReport) -> dict[str, bytes]:
    """Members to add for the scikit-learn image when the tarball has no code/inference.py.

    UploadRejected (code serving) when no loader can be made.
    """
    if framework is Framework.ONNX:
        if not any("/" not in name and name.lower().endswith(".onnx") for name in report.artifacts):
            raise UploadRejected(
                RejectionCode.SERVING,
                "the ONNX handler loads a .onnx file at the tarball root; none found there: move the model "
                "to the root or add code/inference.py with a model_fn",
            )
        code = onnx_code()
        if report.has_requirements:
            del code[REQUIREMENTS_MEMBER]  # the user's requirements stay; they must bring onnxruntime
        return code
    artifact = choose_sklearn_artifact(report.artifacts)
    if artifact is None:
        raise UploadRejected(
            RejectionCode.SERVING,
            "the scikit-learn image has no default model_fn and no .joblib, .pkl or .pickle file was found "
            "to generate one for: add code/inference.py with a model_fn",
        )
    return {INFERENCE_CODE_MEMBER: sklearn_inference_py(artifact)}


def _library_notes(report: TarballReport, libraries: dict[str, str], resolved: ResolvedConfig) -> list[str]:
    """Check the versions the model was saved with against the image; UploadRejected if it cannot load.

    Each pickle's own opcodes (read while the tarball streamed: report.pickles) win over what
    code/modeldrop-libraries.json recorded; without pickles, the record alone is checked.
    """
    notes: list[str] = []
    checked = False
    for name, facts in report.pickles.items():
        if facts.compression is not None:
            notes.append(
                f"{name} is compressed ({facts.compression}): its pickle could not be read, so the library "
                "versions it needs were not checked against the image. Save it uncompressed to have them "
                "checked: joblib.dump(model, path, compress=0) (joblib's default)"
            )
            continue
        if facts.incomplete is not None:
            notes.append(f"{name} was read in part ({facts.incomplete}): versions checked on what was read")
        evidence = pickle_evidence(facts)
        warnings = check_versions(
            libraries | evidence,
            resolved.framework,
            resolved.framework_version,
            numpy_from=name if PICKLED_NUMPY_KEY in evidence else None,
            sklearn_from=name if "scikit-learn" in evidence else None,
        )
        notes.extend(f"warning: {text}" for text in warnings if f"warning: {text}" not in notes)
        checked = True
    if not checked:
        warnings = check_versions(libraries, resolved.framework, resolved.framework_version)
        notes.extend(f"warning: {text}" for text in warnings)
    return notes


def _code_notes(report: TarballReport, resolved: ResolvedConfig, runs_code: bool) -> list[str]:
    """Check code/**/*.py against the Python of the image that will run it; UploadRejected if it cannot."""
    image = image_libraries(resolved.framework, resolved.framework_version)
    if not runs_code or image is None or image.python is None:
        return []
    check_code_syntax(
        report.code_sources, image.python, f"{image.framework.value} {resolved.framework_version}"
    )
    return [
        f"{name} is larger than {MAX_CODE_FILE_BYTES} bytes: its syntax was not checked against Python "
        f"{image.python}"
        for name in report.code_too_large
    ]


# ---------------------------------------------------------------- the plan
@dataclass
class ServingPlan:
    environment: dict[str, str]
    add_members: dict[str, bytes] = field(default_factory=dict)
    leave_out: list[str] = field(default_factory=list)
    record: SetupRecord = field(default_factory=SetupRecord)
    uncompressed_bytes: int = 0

    @property
    def needs_repack(self) -> bool:
        return bool(self.add_members or self.leave_out)


CUSTOM_CODE_ON_SKLEARN_NOTE = (
    "no artifact recognised; served on the scikit-learn image, "
    "set framework in modeldrop.json to choose another"
)


def _xgboost_left_out(report: TarballReport) -> list[str]:
    """Root files the XGBoost algorithm mode would try to load as boosters, other than the model."""
    root_files = [name for name in report.files if "/" not in name]
    boosters = [name for name in root_files if artifact_framework(name) is Framework.XGBOOST]
    if boosters:
        return [name for name in root_files if name not in boosters]
    # The model's name is not one we recognise (framework set in modeldrop.json): keep it, drop our config.
    return [name for name in root_files if name == CONFIG_MEMBER]


def plan_serving(
    report: TarballReport, user_config: ModelConfig | None, resolved: ResolvedConfig, region: str
) -> ServingPlan:
    """Decide the container environment and the files to add or leave out for the resolved image.

    UploadRejected when the image cannot serve the tarball whatever is added.
    """
    family = resolved.image_family
    user_environment = dict(user_config.environment) if user_config else {}
    notes: list[str] = []
    chosen_by_user = user_config is not None and bool(user_config.framework or user_config.image)
    if report.framework is None and not chosen_by_user and resolved.framework is Framework.SKLEARN:
        notes.append(CUSTOM_CODE_ON_SKLEARN_NOTE)

    add: dict[str, bytes] = {}
    leave_out: list[str] = []
    has_code = report.has_inference_code
    if family is Framework.SKLEARN and not has_code:
        add = handler_code(resolved.framework, report)
        has_code = bool(add)
    elif family is Framework.XGBOOST and not has_code:
        leave_out = _xgboost_left_out(report)

    added_environment: dict[str, str] = {}
    rule = ENVIRONMENT_RULES.get(family) if family is not None else None
    if rule is not None and (rule.rule is EnvRule.ALWAYS or (rule.rule is EnvRule.WITH_CODE and has_code)):
        added_environment = {
            key: value for key, value in sdk_environment(region).items() if key not in user_environment
        }

    libraries, libraries_warning = parse_libraries(report.libraries_bytes)
    if libraries_warning:
        notes.append(libraries_warning)
    notes.extend(_library_notes(report, libraries, resolved))
    notes.extend(_code_notes(report, resolved, has_code))
    if leave_out:
        notes.append(
            "the XGBoost image in algorithm mode loads every root file as a booster: "
            f"left out of the deployed copy: {', '.join(leave_out)}"
        )
    if add:
        notes.append(
            f"the {family.value if family else 'prebuilt'} image has no default loader for this model: "
            f"added {', '.join(sorted(add))} (your own code/inference.py is never replaced)"
        )

    record = SetupRecord(
        repacked=bool(add or leave_out),
        added_files=sorted(add),
        left_out_files=leave_out,
        environment=added_environment,
        notes=notes,
    )
    return ServingPlan(
        environment=added_environment | user_environment,
        add_members=add,
        leave_out=leave_out,
        record=record,
        uncompressed_bytes=report.uncompressed_bytes,
    )
