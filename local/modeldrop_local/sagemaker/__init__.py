"""A Docker-free SageMaker Serverless: control plane, endpoint lifecycle and runtime on one host.

`create_app(settings)` is the WSGI app (the local cloud's edge mounts it); `serve(settings)` runs
it alone; `python -m modeldrop_local.sagemaker --port ... --state-dir ...` does the same from a shell.
"""

from modeldrop_local.sagemaker.app import LocalSageMakerApp, create_app, is_sagemaker_request
from modeldrop_local.sagemaker.server import serve, start_in_thread
from modeldrop_local.sagemaker.service import LocalSageMaker
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings

__all__ = [
    "LocalSageMaker",
    "LocalSageMakerApp",
    "LocalSageMakerSettings",
    "create_app",
    "is_sagemaker_request",
    "serve",
    "start_in_thread",
]
