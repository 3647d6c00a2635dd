"""What each prebuilt SageMaker serving image does with a model, kept as data, and the plan it gives.

A model is served as the image of its `PrimaryContainer.Image` serves it: where the user module is
looked for and under which variables, which default handlers exist and which files they load, how
bodies are decoded and answers encoded, and what fails when something is missing. Each profile cites
the serving code it was read from; tests/conformance holds the local answers to those of that code
(the scikit-learn image's, run in-process as an oracle). A custom image (not a prebuilt one) keeps
modeldrop's generic inference-toolkit contract.

Paths: the container sees the model at /opt/ml/model; here that is the extracted model directory,
so a submit directory under /opt/ml/model is looked up inside it. /opt/ml/code, the default submit
directory of sagemaker-containers, is empty in a serving container unless a submit directory was
copied there, as it is here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from modeldrop.frameworks import Framework, framework_from_image

from modeldrop_local.sagemaker.worker.types import WorkerSpec, WorkerStartError

CONTAINER_MODEL_DIR = "/opt/ml/model"
# sagemaker-containers reads its root from this variable (default /opt/ml) when it is imported.
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
PROGRAM_ENV = "SAGEMAKER_PROGRAM"
SUBMIT_DIRECTORY_ENV = "SAGEMAKER_SUBMIT_DIRECTORY"
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
# The health-check failure SageMaker reports for a container whose /ping never answers 200.
PING_FAILED = (
    "The primary container for production variant {variant} did not pass the ping health check. "
    "Please check CloudWatch logs for this endpoint."
)
NO_TORCH = (
    "the PyTorch image serves with PyTorch, which is not installed in this local SageMaker "
    "(pip install torch==2.13.0 in its virtualenv)"
)


class Handler(StrEnum):
    """Which serving stack answers /invocations (one module each, beside this one)."""

    SAGEMAKER_CONTAINERS = "sagemaker-containers"  # sklearn_container.py
    XGBOOST_ALGORITHM = "xgboost-algorithm"  # xgboost_container.py
    INFERENCE_TOOLKIT = "sagemaker-inference"  # toolkit_container.py
    MODELDROP = "modeldrop"  # serving.py: the generic contract with modeldrop's built-in loaders


class DefaultModel(StrEnum):
    """What loads the model when the user module defines no model_fn."""

    NONE = "none"  # the image has no loader: a missing model_fn fails /ping
    XGBOOST_BOOSTERS = "xgboost-boosters"  # every regular file at the model root, as a booster
    TORCHSCRIPT = "torchscript"  # root model.pt, or exactly one root .pt/.pth


@dataclass(frozen=True)
class ContainerProfile:
    family: str
    # The module imported when SAGEMAKER_PROGRAM is unset; None: no user module at all.
    default_program: str | None
    default_submit_dir: str
    # Without a user module: None means /ping fails (the reason below); else the handler that serves.
    without_program: Handler | None
    without_program_reason: str
    with_program: Handler
    default_model: DefaultModel
    sources: tuple[str, ...]
    served_locally: bool = True


SKLEARN = ContainerProfile(
    family="scikit-learn",
    default_program=None,
    default_submit_dir="/opt/ml/code",
    without_program=None,
    without_program_reason=(
        "SAGEMAKER_PROGRAM is not set: the scikit-learn image imports the user module it names (there is "
        "no default) and builds its app on the first request, so /ping answers 500. Set "
        "SAGEMAKER_PROGRAM=inference.py and SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code, with "
        "code/inference.py defining model_fn (the image has no scikit-learn loader of its own)"
    ),
    with_program=Handler.SAGEMAKER_CONTAINERS,
    default_model=DefaultModel.NONE,
    sources=(
        "aws/sagemaker-scikit-learn-container src/sagemaker_sklearn_container/serving.py (v1.2-1): "
        "main() imports ServingEnv().module_name on the first request; default_model_fn -> "
        "sagemaker_containers default_model_fn, which raises NotImplementedError",
        "sagemaker-containers 2.8.6.post2 _env.py ServingEnv: module_name from SAGEMAKER_PROGRAM (None by "
        "default), module_dir from SAGEMAKER_SUBMIT_DIRECTORY (default /opt/ml/code), default_accept from "
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (default application/json)",
        "sagemaker-containers 2.8.6.post2 _server.py start(): import_module(module_dir, module_name) copies "
        "the submit directory (a folder or an s3:// tar.gz) to /opt/ml/code and pip-installs it",
    ),
)

XGBOOST = ContainerProfile(
    family="XGBoost",
    default_program=None,
    default_submit_dir="/opt/ml/code",
    without_program=Handler.XGBOOST_ALGORITHM,
    without_program_reason="",
    with_program=Handler.SAGEMAKER_CONTAINERS,
    default_model=DefaultModel.XGBOOST_BOOSTERS,
    sources=(
        "aws/sagemaker-xgboost-container src/sagemaker_xgboost_container/serving.py: without "
        "SAGEMAKER_PROGRAM the built-in algorithm serves (algorithm_mode/serve.py) and code/ is ignored",
        "aws/sagemaker-xgboost-container algorithm_mode/serve_utils.py: every regular file at the model "
        "root is loaded as a booster (ensemble mode on by default)",
    ),
)

PYTORCH = ContainerProfile(
    family="PyTorch",
    default_program="inference.py",
    default_submit_dir=f"{CONTAINER_MODEL_DIR}/code",
    without_program=Handler.INFERENCE_TOOLKIT,
    without_program_reason="",
    with_program=Handler.INFERENCE_TOOLKIT,
    default_model=DefaultModel.TORCHSCRIPT,
    sources=(
        "aws/sagemaker-inference-toolkit src/sagemaker_inference/environment.py: module SAGEMAKER_PROGRAM, "
        "default inference.py, in /opt/ml/model/code",
        "aws/sagemaker-pytorch-inference-toolkit src/sagemaker_pytorch_serving_container/"
        "default_pytorch_inference_handler.py: default_model_fn loads model.pt, or exactly one .pt/.pth, "
        "as TorchScript",
    ),
)

TENSORFLOW = ContainerProfile(
    family="TensorFlow Serving",
    default_program=None,
    default_submit_dir=f"{CONTAINER_MODEL_DIR}/code",
    without_program=None,
    without_program_reason="TensorFlow Serving is not emulated by the local SageMaker",
    with_program=Handler.MODELDROP,
    default_model=DefaultModel.NONE,
    sources=(
        "aws/sagemaker-tensorflow-serving-container docker/build_artifacts/sagemaker/tfs_utils.py: "
        "SavedModels in /opt/ml/model/[<name>/]<digits>/saved_model.pb, else 'no SavedModel bundles found!'",
    ),
    served_locally=False,
)

# A custom image: modeldrop's generic contract (the inference toolkit's module and folder defaults,
# modeldrop's built-in loaders chosen from the files), as before the prebuilt profiles existed.
GENERIC = ContainerProfile(
    family="custom image",
    default_program="inference.py",
    default_submit_dir=f"{CONTAINER_MODEL_DIR}/code",
    without_program=Handler.MODELDROP,
    without_program_reason="",
    with_program=Handler.MODELDROP,
    default_model=DefaultModel.NONE,
    sources=(
        "aws/sagemaker-inference-toolkit src/sagemaker_inference/transformer.py and "
        "default_inference_handler.py: model_fn, input_fn, predict_fn, output_fn or transform_fn",
    ),
)

PROFILES: dict[Framework | None, ContainerProfile] = {
    Framework.SKLEARN: SKLEARN,
    Framework.XGBOOST: XGBOOST,
    Framework.PYTORCH: PYTORCH,
    Framework.TENSORFLOW: TENSORFLOW,
    None: GENERIC,
}


def profile_for_image(image: str) -> ContainerProfile:
    """The profile of a prebuilt image (ONNX is hosted on the scikit-learn one); GENERIC otherwise."""
    return PROFILES[framework_from_image(image)]


# ------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class UserModule:
    """The user module as the container imports it: a name, and the folder put on sys.path."""

    name: str
    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / f"{self.name}.py"


def module_name(program: str) -> str:
    """SAGEMAKER_PROGRAM names a script or a module: 'serve.py' and 'serve' both import `serve`
    (sagemaker-containers _env.py _parse_module_name; sagemaker-inference does the same)."""
    return program[:-3] if program.endswith(".py") else program


def local_folder(container_path: str, model_dir: Path, source_dir: Path | None) -> Path | None:
    """Where a container path of the submit directory is on this machine; None: nothing there."""
    if container_path.startswith("s3://"):
        return source_dir  # downloaded and extracted by the local SageMaker while Creating
    normalised = posixpath.normpath(container_path)
    if normalised == CONTAINER_MODEL_DIR or normalised.startswith(CONTAINER_MODEL_DIR + "/"):
        relative = normalised[len(CONTAINER_MODEL_DIR) :].lstrip("/")
        folder = (model_dir / relative).resolve()
        root = model_dir.resolve()
        return folder if folder == root or root in folder.parents else None
    return None


def find_user_module(profile: ContainerProfile, spec: WorkerSpec) -> UserModule | None:
    """The user module the image imports, or None when it imports none.

    A program that is named (or defaulted by the image) but absent: the real toolkits differ. The
    inference toolkit falls back to its defaults for its own default name (inference.py) only;
    sagemaker-containers fails to import a named module. Both are reported here, never silently
    replaced by a built-in loader.
    """
    program = spec.environment.get(PROGRAM_ENV) or profile.default_program
    if not program:
        return None
    submit_dir = spec.environment.get(SUBMIT_DIRECTORY_ENV) or profile.default_submit_dir
    folder = local_folder(submit_dir, spec.model_dir, spec.source_dir)
    name = module_name(program)
    if folder is not None and (
        (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()
    ):
        return UserModule(name, folder)
    named = PROGRAM_ENV in spec.environment
    if not named and profile.default_program is not None:
        return None  # the toolkit's default module name, absent: its default handlers serve
    raise WorkerStartError(
        f"{PROGRAM_ENV}={program}: no module {name!r} ({name}.py) in the submit directory {submit_dir}"
        + (f" (here {folder})" if folder is not None and not submit_dir.startswith("s3://") else "")
        + f"; the {profile.family} image cannot import it, so the container does not start. "
        + _submit_dir_hint(submit_dir)
    )


def opt_ml_stand_in(root: Path, model_dir: Path, code_dir: Path | None) -> Path:
    """The /opt/ml a sagemaker-containers worker sees: `model` and `code` link to the model and the code.

    sagemaker-containers 2.8.6.post2 `_env.py` resolves every path from SAGEMAKER_BASE_DIR (default
    /opt/ml) when it is imported: `model_dir` (ServingEnv().model_dir too) is <base>/model, and
    `_create_code_dir()` makes <base>/code. Where neither /opt/ml nor the variable exists it writes a
    training tree under ~/sagemaker_local/jobs/<time>/ at every import instead. In the image /opt/ml/code
    holds the submit directory (`_modules.import_module` copies it there); here it links to it. One
    folder per model and code folder, under `root` (the launcher's cache), shared by that model's workers.
    """
    key = hashlib.sha256(f"{model_dir.resolve()}\0{code_dir.resolve() if code_dir else ''}".encode())
    base = root / key.hexdigest()[:16]
    base.mkdir(parents=True, exist_ok=True)
    for name, target in (("model", model_dir), ("code", code_dir)):
        link = base / name
        if target is not None and not link.is_symlink():
            with contextlib.suppress(FileExistsError):  # another worker of the same model made it
                link.symlink_to(target.resolve(), target_is_directory=True)
    return base


def _submit_dir_hint(submit_dir: str) -> str:
    if submit_dir == "/opt/ml/code":
        return (
            f"{SUBMIT_DIRECTORY_ENV} is unset or /opt/ml/code, which is empty in a serving container: "
            f"set it to /opt/ml/model/code for code/ inside model.tar.gz, or to an s3:// sourcedir.tar.gz"
        )
    return "Check the file name and the folder."


_VERSION_FOLDER = re.compile(r"^\d+$")


def tensorflow_layout_problem(model_dir: Path) -> str | None:
    """TensorFlow Serving's rule for /opt/ml/model: [<name>/]<digits>/saved_model.pb."""
    for saved_model in model_dir.rglob("saved_model.pb"):
        parts = saved_model.relative_to(model_dir).parts
        if len(parts) in (2, 3) and _VERSION_FOLDER.match(parts[-2]):
            return None
    return (
        "no SavedModel bundles found! TensorFlow Serving needs /opt/ml/model/<version digits>/saved_model.pb "
        "or /opt/ml/model/<model name>/<version digits>/saved_model.pb"
    )


def root_files(model_dir: Path) -> list[Path]:
    """The regular files at the model root, as os.listdir + isfile sees them (dot files included)."""
    return sorted(model_dir / name for name in os.listdir(model_dir) if (model_dir / name).is_file())
