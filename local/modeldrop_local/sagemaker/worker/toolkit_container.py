"""The PyTorch image's serving stack (sagemaker-inference + sagemaker-pytorch-inference), as a handler.

Read from:
- aws/sagemaker-inference-toolkit src/sagemaker_inference/transformer.py: Accept missing or `*/*`
  becomes SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (default application/json); JSON and CSV bodies are
  decoded to text; errors carry their status (UnsupportedFormatError 415, anything else 500) and the
  body is the message and the traceback; a (body, content_type) result sets the content type, else
  the Accept type is the response's.
- sagemaker-inference decoder.py / encoder.py: JSON -> np.array(json.loads(...)) (no "instances"),
  CSV -> np.genfromtxt, NPY -> np.load; keyed by the content type.
- aws/sagemaker-pytorch-inference-toolkit default_pytorch_inference_handler.py: default_model_fn
  loads model.pt, or exactly one .pt/.pth at the root, with torch.jit.load; predict runs the model
  under torch.no_grad() on a float tensor; output_fn encodes to the Accept type.
"""

from __future__ import annotations

import io
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modeldrop_local.sagemaker.worker.profiles import DEFAULT_ACCEPT_ENV, NO_TORCH
from modeldrop_local.sagemaker.worker.serving import ModelLoadError, Outcome, load_user_module
from modeldrop_local.sagemaker.worker.sklearn_container import ANY, CSV, JSON, NPY, UTF8_TYPES, encode

DEFAULT_MODEL_NAME = "model.pt"


class ToolkitError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def default_model_fn(model_dir: str) -> Any:
    root = Path(model_dir)
    path = root / DEFAULT_MODEL_NAME
    if not path.is_file():
        candidates = [p for p in sorted(root.iterdir()) if p.is_file() and p.suffix in (".pt", ".pth")]
        if len(candidates) != 1:
            names = [candidate.name for candidate in candidates]
            raise ValueError(
                f"Exactly one .pth or .pt file is required for PyTorch models: {names} "
                f"(the image's default_model_fn loads {DEFAULT_MODEL_NAME}, or the one .pt/.pth at the model "
                "root, as TorchScript; or define model_fn in code/inference.py)"
            )
        path = candidates[0]
    try:
        import torch
    except ImportError:
        raise ModelLoadError(NO_TORCH) from None
    model = torch.jit.load(str(path), map_location="cpu")
    model.eval()
    return model


def default_input_fn(data: Any, content_type: str) -> Any:
    import json

    if content_type == JSON:
        array = np.array(json.loads(data))
    elif content_type == CSV:
        array = np.genfromtxt(io.StringIO(data), delimiter=",")
    elif content_type == NPY:
        array = np.load(io.BytesIO(data), allow_pickle=True)
    else:
        raise ToolkitError(415, f"Content type {content_type} is not supported by this framework.")
    import torch

    return torch.FloatTensor(array)


def default_predict_fn(data: Any, model: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(data)


def default_output_fn(prediction: Any, accept: str) -> Any:
    if hasattr(prediction, "detach"):
        prediction = prediction.detach().cpu().numpy()
    try:
        return encode(prediction, accept)
    except Exception:
        raise ToolkitError(415, f"Content type {accept} is not supported by this framework.") from None


class InferenceToolkitHandler:
    """The PyTorch image's handler chain, with the user module's functions where it defines them."""

    def __init__(self, model_dir: Path, code_dir: Path | None, module: str | None) -> None:
        self.model_dir = model_dir
        user = load_user_module(code_dir, module) if code_dir is not None and module else None

        def pick(name: str, default: Callable[..., Any] | None) -> Callable[..., Any] | None:
            function = getattr(user, name, None) if user is not None else None
            return function if callable(function) else default

        self._transform_fn = pick("transform_fn", None)
        self._input_fn = pick("input_fn", default_input_fn)
        self._predict_fn = pick("predict_fn", default_predict_fn)
        self._output_fn = pick("output_fn", default_output_fn)
        self._default_accept = os.environ.get(DEFAULT_ACCEPT_ENV) or JSON
        model_fn = pick("model_fn", default_model_fn)
        assert model_fn is not None
        try:
            self.model = model_fn(str(model_dir))
        except ValueError as error:
            raise ModelLoadError(str(error)) from error

    def invoke(self, body: bytes, content_type: str, accept: str, request_id: str) -> Outcome:
        content_type = content_type or JSON
        accept = accept if accept and accept != ANY else self._default_accept
        data: Any = body.decode("utf-8", "replace") if content_type in UTF8_TYPES else body
        timings: dict[str, float] = {}
        started = time.perf_counter()
        try:
            if self._transform_fn is not None:
                result = self._transform_fn(self.model, data, content_type, accept)
            else:
                assert self._input_fn and self._predict_fn and self._output_fn
                result = self._output_fn(
                    self._predict_fn(self._input_fn(data, content_type), self.model), accept
                )
        except Exception as error:
            status = error.status if isinstance(error, ToolkitError) else 500
            return Outcome(status, f"{error}\n{traceback.format_exc()}".encode(), JSON, timings)
        timings["transform"] = (time.perf_counter() - started) * 1000
        response_type = accept
        if isinstance(result, tuple) and len(result) == 2:
            result, response_type = result
        payload = result.encode() if isinstance(result, str) else bytes(result)
        return Outcome(200, payload, response_type, timings)
