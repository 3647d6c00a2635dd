"""The local SageMaker's fork servers: one per image environment and framework, with that framework's
imports preloaded (the fork server of modeldrop_local.forking).

A cold start forks from it, so it pays for the model load, not for Python and library imports. The
server only imports, never loads a model (a fork copies only the calling thread; importing onnxruntime
starts idle native threads that wait on a futex, and the worker creates its own session and thread
pool after the fork: 60 forks in a row that each built and ran a session all succeeded). Each worker
leads its own process group and is killed with the server (`isolate_workers`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import modeldrop.frameworks

from modeldrop_local.forking.client import ForkServer

# What each fork server imports up front. A custom code/inference.py runs on the server of the
# image's framework, so common helpers of that stack are included.
PRELOADS: dict[str, tuple[str, ...]] = {
    "generic": ("numpy",),
    "sklearn": (
        "numpy",
        "scipy",
        "scipy.sparse",
        "joblib",
        "sklearn",
        "sklearn.base",
        "sklearn.utils",
        "sklearn.linear_model",
        "sklearn.ensemble",
        "sklearn.tree",
        "sklearn.pipeline",
        "sklearn.preprocessing",
        "sklearn.neighbors",
        # The image's codecs, in its environment (sklearn_container.image_encoders); absent elsewhere.
        "sagemaker_containers._encoders",
    ),
    "xgboost": ("numpy", "scipy", "xgboost"),
    "onnx": ("numpy", "onnxruntime"),
    "pytorch": ("numpy", "torch"),
}
# One thread per worker, as a SageMaker Serverless vCPU share; set before any native library loads.
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
# The fork server imports these packages without running their __init__ (the whole server and its web
# stack; the launcher and psutil): the server must stay small, free of any thread a server module may
# start, and run in a pinned image environment that has none of those.
BARE_PACKAGES = ("modeldrop_local.sagemaker", "modeldrop_local.sagemaker.worker")
# Preloaded in every fork server besides the framework: what each worker runs (child.py imports it).
WORKER_MODULES = ("modeldrop_local.sagemaker.worker.serving",)


# What a worker inherits from the server's environment: what Python and pip need, and the AWS
# settings (on SageMaker the container gets its region and role credentials). Nothing else of the
# host leaks into model code; PrimaryContainer.Environment is added per worker.
INHERITED_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TMPDIR",
        "TZ",
        "LD_LIBRARY_PATH",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
    }
)
INHERITED_PREFIXES = ("AWS_", "MODELDROP_", "PIP_")


def container_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if key in INHERITED_VARIABLES or key.startswith(INHERITED_PREFIXES)
    }


class ImageForkServer(ForkServer):
    """The fork server of one preload (a key of PRELOADS), under an image environment's interpreter."""

    def __init__(self, preload: str, python: str = sys.executable, label: str | None = None) -> None:
        """python: the interpreter of a pinned image environment (image_envs.py), else this one."""
        self.preload = preload
        env = {**container_environment(os.environ), **THREAD_ENV}
        # The worker code and the modules of the layer it imports (modeldrop.frameworks and
        # modeldrop.content_types, standard library only) come from the source tree, so a pinned
        # environment needs no copy of either.
        local_root = str(Path(__file__).resolve().parents[3])
        layer_root = str(Path(modeldrop.frameworks.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [local_root, layer_root, env.get("PYTHONPATH", "")]))
        if python != sys.executable:  # what `pip` and `python` mean to model code in that environment
            env_dir = str(Path(python).parent.parent)
            env["VIRTUAL_ENV"] = env_dir
            env["PATH"] = os.pathsep.join(filter(None, [str(Path(python).parent), env.get("PATH", "")]))
        super().__init__(
            label or preload,
            "modeldrop_local.sagemaker.worker.child:run_forked",
            environment=env,
            python=python,
            preload=(*PRELOADS.get(preload, PRELOADS["generic"]), *WORKER_MODULES),
            bare_packages=BARE_PACKAGES,
            isolate_workers=True,
            stdout=subprocess.DEVNULL,
        )
