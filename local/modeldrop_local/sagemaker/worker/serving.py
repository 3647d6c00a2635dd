"""The sagemaker-inference-toolkit contract for custom images, as run inside a worker.

A model is served by four functions, `model_fn`, `input_fn`, `predict_fn`, `output_fn` (or one
`transform_fn`), each taken from `code/inference.py` when it defines it, else the built-in default
for the model's framework (one module per framework in loaders/). Each may take a trailing `context`
argument, as in the toolkit. Errors carry their HTTP status (KServe and the toolkit do the same): 415
for a content type or Accept we cannot serve, 400 for input the model rejects, 500 for anything else,
with the exception message.
"""

from __future__ import annotations

import csv
import importlib.util
import inspect
import io
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from modeldrop.content_types import accept_list, essence, quality

from modeldrop_local.sagemaker.worker.handler_errors import HandlerError, ModelLoadError
from modeldrop_local.sagemaker.worker.loaders import BUILT_INS

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
SUPPORTED_TYPES = (JSON, CSV, NPY)


def negotiate_accept(accept: str | None, content_type: str) -> str:
    """The response type for an Accept header: */* or missing -> the request's type, else JSON."""
    request_type = essence(content_type)
    fallback = request_type if request_type in SUPPORTED_TYPES else JSON
    if not (accept or "").strip():
        return fallback
    candidates: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_list(accept)):
        if item.essence and quality(item) > 0:
            candidates.append((-quality(item), position, item.essence))
    for _, _, kind in sorted(candidates):
        if kind == "*/*":
            return fallback
        if kind == "application/*":
            return fallback if fallback.startswith("application/") else JSON
        if kind in SUPPORTED_TYPES:
            return kind
    raise HandlerError(415, f"unsupported Accept {accept!r}: this model answers {', '.join(SUPPORTED_TYPES)}")


# ---------------------------------------------------------------------------------------- decoding


def _text(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HandlerError(400, f"the request body is not UTF-8 text: {error}") from error


def _as_array(rows: Any) -> Any:
    try:
        array = np.asarray(rows)
    except ValueError as error:  # ragged rows
        raise HandlerError(400, f"the rows do not form a table: {error}") from error
    return array


def decode_json(body: bytes | str) -> Any:
    text = _text(body)
    if not text.strip():
        raise HandlerError(400, "empty request body: send a JSON list of rows")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise HandlerError(400, f"the request body is not valid JSON: {error}") from error
    if isinstance(document, dict):
        for key in ("instances", "inputs"):
            if key in document:
                return _as_array(document[key])
        raise HandlerError(400, 'a JSON object must hold "instances" (a list of rows) or "inputs"')
    if not isinstance(document, list):
        raise HandlerError(400, 'send a JSON list of rows, or {"instances": [...]}')
    return _as_array(document)


def _number(cell: str) -> float | str:
    try:
        return float(cell)
    except ValueError:
        return cell


def decode_csv(body: bytes | str) -> Any:
    rows = [row for row in csv.reader(io.StringIO(_text(body))) if row]
    if not rows:
        raise HandlerError(400, "empty request body: send CSV rows of features")
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise HandlerError(400, f"CSV rows have different numbers of columns: {sorted(widths)}")
    cells = [[_number(cell.strip()) for cell in row] for row in rows]
    if all(isinstance(cell, float) for row in cells for cell in row):
        return np.asarray(cells, dtype=np.float64)
    return np.asarray(cells, dtype=object)


def decode_npy(body: bytes | str) -> Any:
    raw = body.encode() if isinstance(body, str) else body
    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise HandlerError(400, f"the request body is not a .npy array: {error}") from error


def default_input_fn(body: bytes | str, content_type: str) -> Any:
    kind = essence(content_type) or JSON
    if kind == JSON:
        return decode_json(body)
    if kind == CSV:
        return decode_csv(body)
    if kind == NPY:
        return decode_npy(body)
    raise HandlerError(415, f"unsupported content type {content_type!r}: send {', '.join(SUPPORTED_TYPES)}")


# ---------------------------------------------------------------------------------------- encoding


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def encode(prediction: Any, accept: str) -> bytes:
    if accept == JSON:
        return json.dumps(_jsonable(prediction)).encode()
    array = np.asarray(prediction)
    if accept == NPY:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()
    if accept == CSV:
        table = array.reshape(-1, 1) if array.ndim <= 1 else array.reshape(array.shape[0], -1)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows([_jsonable(cell) for cell in row] for row in table)
        return out.getvalue().encode()
    raise HandlerError(415, f"unsupported Accept {accept!r}")


def default_output_fn(prediction: Any, accept: str) -> bytes:
    return encode(prediction, accept)


# --------------------------------------------------------------------------------- handler context


@dataclass
class Context:
    """A minimal stand-in for the toolkit's (Multi Model Server's) context object."""

    model_dir: str
    request_id: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)

    @property
    def system_properties(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir, "gpu_id": None}

    def get_request_header(self, idx: int, key: str) -> str | None:
        return self.request_headers.get(key.lower())

    def get_all_request_header(self, idx: int) -> dict[str, str]:
        return dict(self.request_headers)


# ---------------------------------------------------------------------------------------- handler


def _positional_arity(function: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return -1
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return 99
    return sum(
        1
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )


def _with_optional_context(function: Callable[..., Any], base_arity: int) -> Callable[..., Any]:
    """Call `function(*args)` or `function(*args, context)`, as its signature asks."""
    takes_context = _positional_arity(function) > base_arity

    def call(*args: Any, context: Context) -> Any:
        return function(*args, context) if takes_context else function(*args)

    return call


def load_user_module(code_dir: Path, name: str = "inference") -> ModuleType:
    """Import the user module `name` from code_dir, with code_dir on sys.path (as the toolkits do)."""
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    return importlib.import_module(name)


def _error_status(error: BaseException) -> int:
    status = getattr(error, "status_code", None)  # the toolkit's BaseInferenceToolkitError and kin
    return status if isinstance(status, int) and 400 <= status <= 599 else 500


def _error_message(error: BaseException) -> str:
    if isinstance(error, MemoryError):
        return "MemoryError: the model ran out of memory (raise MemorySizeInMB)"
    message = getattr(error, "message", None)
    text = message if isinstance(message, str) and message else str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass
class Outcome:
    status: int
    body: bytes
    content_type: str
    timings_ms: dict[str, float]


class ModelHandler:
    """A loaded model and its handler chain."""

    def __init__(
        self,
        model_dir: Path,
        framework: str | None,
        artifact: Path | None,
        code_dir: Path | None,
        module: str = "inference",
    ):
        self.model_dir = model_dir
        user: ModuleType | None = load_user_module(code_dir, module) if code_dir is not None else None
        built_in = BUILT_INS.get(framework or "")

        def user_fn(name: str) -> Callable[..., Any] | None:
            function = getattr(user, name, None) if user is not None else None
            return function if callable(function) else None

        model_fn = user_fn("model_fn")
        if model_fn is not None:
            self._model_fn: Callable[..., Any] = _with_optional_context(model_fn, 1)
        elif built_in is not None and artifact is not None:
            loader = built_in[0]
            self._model_fn = lambda _model_dir, context: loader(artifact)
        else:
            raise ModelLoadError(
                f"{module}.py defines no model_fn and no built-in loader fits "
                f"(framework {framework or 'unknown'}, artifact {artifact.name if artifact else 'none'})"
            )
        transform_fn = user_fn("transform_fn")
        self._transform_fn = _with_optional_context(transform_fn, 4) if transform_fn else None
        input_fn, predict_fn, output_fn = user_fn("input_fn"), user_fn("predict_fn"), user_fn("output_fn")
        self._custom_output = output_fn is not None
        self._input_fn = _with_optional_context(input_fn or default_input_fn, 2)
        if predict_fn is not None:
            self._predict_fn = _with_optional_context(predict_fn, 2)
        elif built_in is not None:
            self._predict_fn = _with_optional_context(built_in[1], 2)
        else:
            self._predict_fn = _with_optional_context(_call_model, 2)
        self._output_fn = _with_optional_context(output_fn or default_output_fn, 2)
        self.model = self._model_fn(str(model_dir), context=Context(str(model_dir)))

    def invoke(self, body: bytes, content_type: str, accept: str, request_id: str) -> Outcome:
        # The runtime hands headers over as sent: an absent Content-Type means JSON, an absent Accept
        # the request's type (the image profiles have their own defaults: sklearn_container.py,
        # xgboost_container.py, toolkit_container.py).
        content_type = content_type or JSON
        context = Context(str(self.model_dir), request_id, {"content-type": content_type, "accept": accept})
        timings: dict[str, float] = {}
        try:
            if self._transform_fn is not None:
                started = time.perf_counter()
                result = self._transform_fn(self.model, body, content_type, accept, context=context)
                timings["transform"] = (time.perf_counter() - started) * 1000
                payload, response_type = _split_response(result, _resolved_accept(accept, content_type))
                return Outcome(200, payload, response_type, timings)
            # The built-in output_fn fails an unsupported Accept before any work is done.
            response_type = (
                _resolved_accept(accept, content_type)
                if self._custom_output
                else negotiate_accept(accept, content_type)
            )
            started = time.perf_counter()
            data = self._input_fn(body, content_type, context=context)
            timings["input"] = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            prediction = self._predict_fn(data, self.model, context=context)
            timings["predict"] = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            result = self._output_fn(prediction, response_type, context=context)
            timings["output"] = (time.perf_counter() - started) * 1000
            payload, response_type = _split_response(result, response_type)
            return Outcome(200, payload, response_type, timings)
        except HandlerError as error:
            return Outcome(error.status, error.message.encode(), "text/plain; charset=utf-8", timings)
        except Exception as error:  # the model's own code failed: 500 (or the status it carries)
            return Outcome(
                _error_status(error), _error_message(error).encode(), "text/plain; charset=utf-8", timings
            )


def _call_model(data: Any, model: Any) -> Any:
    """predict_fn for a custom model_fn without predict_fn: predict() if it has one, else call it."""
    if hasattr(model, "predict"):
        return model.predict(data)
    if callable(model):
        return model(data)
    raise HandlerError(500, f"the model ({type(model).__name__}) has no predict() and is not callable")


def _resolved_accept(accept: str, content_type: str) -> str:
    """What a custom output_fn gets: the Accept header, with */* or none resolved as for built-ins."""
    kind = essence(accept)
    if kind in ("", "*/*"):
        request_type = essence(content_type)
        return request_type if request_type in SUPPORTED_TYPES else JSON
    return accept.strip()


def _split_response(result: Any, default_type: str) -> tuple[bytes, str]:
    """output_fn/transform_fn return a body, or (body, content_type) as the toolkit allows."""
    content_type = default_type
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        result, content_type = result
    if isinstance(result, bytes | bytearray | memoryview):
        return bytes(result), content_type
    if isinstance(result, str):
        return result.encode(), content_type
    if isinstance(result, np.ndarray | list | dict):  # a handler that returns data, not bytes
        return encode(result, JSON), JSON
    raise HandlerError(500, f"output_fn returned {type(result).__name__}; return bytes or str")
