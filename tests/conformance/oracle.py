"""The scikit-learn container's serving path, run in-process (under .venv-oracle/bin/python).

Reads a JSON list on stdin: {"id", "base_dir" (an /opt/ml stand-in holding model/), "env",
"requests": [{"content_type", "accept" (or null), "body_b64"}]}. Answers on stdout, by id:
{"ping": status, "error": why the app could not be built (or null), "responses": [{"status",
"content_type", "body_b64"}]}.

What is real: sagemaker-containers 2.8.6.post2 (the image's serving library: _env.ServingEnv,
_transformer.Transformer, _encoders, _worker.Worker/Request/Response) on Flask 1.1.1 / Werkzeug 1.0.1,
as the image pins them. What is ours: the image's own four default functions and its app factory,
re-expressed from aws/sagemaker-scikit-learn-container src/sagemaker_sklearn_container/serving.py
(tag v1.2-1) below, and the stand-ins for what Docker and gunicorn do: /opt/ml is a temporary
folder (SAGEMAKER_BASE_DIR), the submit directory is put on sys.path where the image pip-installs it
(_modules.import_module), and an exception while building the app answers 500, as gunicorn does.

Each deployment runs in a forked child: the library reads its environment at import
(_env.model_dir, _worker.env), so every child imports it afresh, as every container starts afresh.
"""

# ruff: noqa: E402 - stdout is set aside and the shim installed before the library is imported
from __future__ import annotations

import base64
import collections
import collections.abc
import importlib
import json
import os
import sys
import traceback
import warnings
from typing import Any

ANSWER = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr

# The image runs Python 3.8, where collections.Mapping is the alias of collections.abc.Mapping that
# sagemaker-containers' _mapping.py subclasses; Python 3.10 removed the alias. Same class, restored.
collections.Mapping = collections.abc.Mapping  # type: ignore[attr-defined]
warnings.simplefilter("ignore")

# The heavy third-party imports happen once, before the forks; the library is imported per child.
import flask  # noqa: F401
import joblib  # noqa: F401
import numpy as np
import scipy.sparse  # noqa: F401
import sklearn  # noqa: F401


def _sklearn_image_app(modules: dict[str, Any]) -> Any:
    """The image's app factory (serving.py main), built as it is on the first request."""
    content_types = modules["_content_types"]
    encoders = modules["_encoders"]
    env = modules["_env"]
    transformer = modules["_transformer"]
    worker = modules["_worker"]

    # The image's four defaults: no built-in loader; decode and cast text types to float32; predict;
    # encode to the Accept type.
    def default_model_fn(model_dir: str) -> Any:
        return transformer.default_model_fn(model_dir)

    def default_input_fn(input_data: Any, content_type: str) -> Any:
        array = encoders.decode(input_data, content_type)
        return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array

    def default_predict_fn(input_data: Any, model: Any) -> Any:
        return model.predict(input_data)

    def default_output_fn(prediction: Any, accept: str) -> Any:
        return worker.Response(encoders.encode(prediction, accept), mimetype=accept)

    serving_env = env.ServingEnv()
    if serving_env.module_dir not in sys.path:
        sys.path.insert(0, serving_env.module_dir)
    user_module = importlib.import_module(serving_env.module_name)  # None: TypeError, as in the image

    handlers = {name: getattr(user_module, name, None) for name in ("input_fn", "predict_fn", "output_fn")}
    transform_fn = getattr(user_module, "transform_fn", None)
    model_fn = getattr(user_module, "model_fn", default_model_fn)
    if transform_fn is not None and any(handlers.values()):
        raise ValueError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
    if transform_fn is not None:
        user_transformer = transformer.Transformer(model_fn=model_fn, transform_fn=transform_fn)
    else:
        user_transformer = transformer.Transformer(
            model_fn=model_fn,
            input_fn=handlers["input_fn"] or default_input_fn,
            predict_fn=handlers["predict_fn"] or default_predict_fn,
            output_fn=handlers["output_fn"] or default_output_fn,
        )
    user_transformer.initialize()
    return worker.Worker(transform_fn=user_transformer.transform, module_name=serving_env.module_name)


def _container_path(value: str, base_dir: str) -> str:
    return base_dir + value[len("/opt/ml") :] if value.startswith("/opt/ml") else value


def serve(case: dict[str, Any]) -> dict[str, Any]:
    """In the child: the container's environment, the library imported afresh, /ping then each request."""
    base_dir = case["base_dir"]
    os.environ["SAGEMAKER_BASE_DIR"] = base_dir
    for key, value in case["env"].items():
        os.environ[key] = _container_path(value, base_dir)
    modules = {
        name: importlib.import_module(f"sagemaker_containers.{name}")
        for name in ("_content_types", "_encoders", "_env", "_transformer", "_worker")
    }
    try:
        app = _sklearn_image_app(modules)
    except Exception as error:  # gunicorn answers 500 for an app that raises: /ping fails
        return {"ping": 500, "error": f"{type(error).__name__}: {error}", "responses": []}
    client = app.test_client()
    answer: dict[str, Any] = {"ping": client.get("/ping").status_code, "error": None, "responses": []}
    for request in case["requests"]:
        headers = {"Content-Type": request["content_type"]}
        if request["accept"] is not None:
            headers["Accept"] = request["accept"]
        response = client.post("/invocations", data=base64.b64decode(request["body_b64"]), headers=headers)
        answer["responses"].append(
            {
                "status": response.status_code,
                "content_type": response.headers.get("Content-Type"),
                "body_b64": base64.b64encode(response.get_data()).decode(),
            }
        )
    return answer


def in_child(case: dict[str, Any]) -> dict[str, Any]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one container
        os.close(read_end)
        try:
            payload = json.dumps(serve(case))
        except Exception:
            payload = json.dumps({"harness_error": traceback.format_exc()})
        with os.fdopen(write_end, "w") as out:
            out.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as source:
        text = source.read()
    os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(text)
    return result


def main() -> None:
    results = {case["id"]: in_child(case) for case in json.load(sys.stdin)}
    json.dump(results, ANSWER)
    ANSWER.flush()


if __name__ == "__main__":
    main()
