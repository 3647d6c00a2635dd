"""What to start for a model: the serving plan (which fork server, loader, user module and environment).

A model is served as the image named in its WorkerSpec serves it (profiles.py); a custom image gets
the generic plan: the user module where the toolkit looks, else a built-in loader chosen from the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modeldrop_local.sagemaker.worker.fork_servers import PRELOADS
from modeldrop_local.sagemaker.worker.image_envs import ImageEnvironment, environment_for_image
from modeldrop_local.sagemaker.worker.profiles import (
    GENERIC,
    NO_TORCH,
    PYTORCH,
    TENSORFLOW,
    XGBOOST,
    DefaultModel,
    Handler,
    find_user_module,
    profile_for_image,
    tensorflow_layout_problem,
)
from modeldrop_local.sagemaker.worker.types import WorkerSpec, WorkerStartError


@dataclass(frozen=True)
class WorkerPlan:
    """How a model is served: which serving stack, fork server, loader, artifact and user module."""

    framework: str | None  # modeldrop's built-in loader (sklearn, xgboost, onnx, pytorch); None: none
    preload: str  # which fork server (a key of PRELOADS)
    artifact: Path | None
    code_dir: Path | None  # the user module's folder (on sys.path; its requirements.txt is installed)
    handler: Handler = Handler.MODELDROP
    module: str | None = None  # the user module's name, imported from code_dir
    default_model: DefaultModel = DefaultModel.NONE  # the image's model_fn when the module has none
    family: str = GENERIC.family
    # The image's pinned library versions (image_envs.py); None: the project's own environment.
    environment: ImageEnvironment | None = None

    def describe(self) -> str:
        """For the launcher's "worker started (...)" log line."""
        if self.handler is Handler.MODELDROP:
            return self.framework or f"{self.module}.py"
        user = f", user module {self.module}" if self.module else ""
        return f"{self.family} image, {self.handler.value}{user}"


def _relative_files(model_dir: Path) -> list[str]:
    return sorted(
        str(path.relative_to(model_dir)).replace(os.sep, "/")
        for path in model_dir.rglob("*")
        if path.is_file()
    )


def _torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def plan_for(spec: WorkerSpec) -> WorkerPlan:
    """Serve the model as the image of spec.image does (profiles.py); a custom image: the generic plan."""
    if not spec.model_dir.is_dir():
        raise WorkerStartError(f"the model directory {spec.model_dir} does not exist")
    profile = profile_for_image(spec.image)
    if profile is GENERIC:
        return _generic_plan(spec)
    if profile is TENSORFLOW:
        problem = tensorflow_layout_problem(spec.model_dir)
        raise WorkerStartError(
            problem or f"{profile.without_program_reason} (the SavedModel layout is valid)"
        )
    module = find_user_module(profile, spec)
    if module is None and profile.without_program is None:
        raise WorkerStartError(profile.without_program_reason)
    handler = profile.with_program if module is not None else profile.without_program
    assert handler is not None
    names = _relative_files(spec.model_dir)
    if profile is PYTORCH:
        # Without torch here the toolkit still checks the layout first; loading then says torch is missing.
        preload = "pytorch" if _torch_installed() else "generic"
    elif profile is XGBOOST:
        preload = "xgboost"
    else:  # the scikit-learn image, which also hosts ONNX models (their inference.py imports onnxruntime)
        preload = "onnx" if any(name.endswith(".onnx") for name in names) else "sklearn"
    environment = environment_for_image(spec.image, pickled_model=preload in ("sklearn", "xgboost"))
    return WorkerPlan(
        framework=None,
        preload=preload,
        artifact=None,
        code_dir=module.folder if module is not None else None,
        handler=handler,
        module=module.name if module is not None else None,
        family=profile.family,
        default_model=profile.default_model,
        environment=environment,
    )


def _generic_plan(spec: WorkerSpec) -> WorkerPlan:
    """A custom image: the user module where the toolkit looks, else a built-in loader from the files."""
    from modeldrop.frameworks import Framework, artifact_framework, detect_framework

    names = _relative_files(spec.model_dir)
    module = find_user_module(GENERIC, spec)
    has_code = module is not None
    code_dir = module.folder if module is not None else None
    module_name = module.name if module is not None else None
    framework = detect_framework(names)
    if framework is Framework.TENSORFLOW and not has_code:
        raise WorkerStartError("TensorFlow SavedModels are not served by the local SageMaker")
    if framework is None:
        if has_code:
            return WorkerPlan(None, "generic", None, code_dir, module=module_name)
        raise WorkerStartError(
            "unknown framework: no code/inference.py and no model artifact recognised in the tarball "
            "(expected model.joblib/.pkl, xgboost-model/.ubj/.bst, model.onnx or a TorchScript .pt); "
            f"files: {', '.join(names[:10]) or 'none'}"
        )
    # Root-level artifacts first: nested ones are usually auxiliary files.
    candidates = sorted(
        (name for name in names if artifact_framework(name) is framework), key=lambda n: (n.count("/"), n)
    )
    artifact = spec.model_dir / candidates[0] if candidates else None
    if framework is Framework.PYTORCH and not _torch_installed():
        if not has_code:
            raise WorkerStartError(NO_TORCH)
        return WorkerPlan(None, "generic", artifact, code_dir, module=module_name)
    preload = framework.value if framework.value in PRELOADS else "generic"
    return WorkerPlan(framework.value, preload, artifact, code_dir, module=module_name)
