"""The scikit-learn image's serving stack (sagemaker-containers 2.8.6), as a worker handler.

Read from, and to be kept in step with:
- aws/sagemaker-scikit-learn-container src/sagemaker_sklearn_container/serving.py (v1.2-1):
  `_user_module_transformer` takes model_fn/input_fn/predict_fn/output_fn/transform_fn from the user
  module, each missing one replaced by the image's default; transform_fn with any of the other three
  is a UserError; default_input_fn decodes then casts JSON/CSV to float32; default_predict_fn is
  `model.predict`; default_output_fn encodes to the Accept type; default_model_fn raises
  NotImplementedError.
- sagemaker-containers 2.8.6.post2 `_transformer.py`: every function handed to the Transformer is
  wrapped in ClientError (`_functions.error_wrapper`), so even an unsupported content type escapes the
  415/406 branches of `_default_transform_fn` and Flask answers 500; a tuple result becomes a
  Response with that mimetype, anything else is returned to Flask as is.
- sagemaker-containers `_worker.py` Request: Content-Type defaults to application/json; Accept
  missing or `*/*` becomes SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (default application/json); JSON and
  CSV bodies reach the handlers as text, everything else as bytes.
- sagemaker-containers `_encoders.py`: decoders and encoders keyed by the exact content type
  (`application/json; charset=utf-8` is not found); JSON -> np.array(json.loads(...)) (an
  {"instances": ...} object stays an object); CSV -> the rows' strings, squeezed (one row becomes 1-D)
  and cast; NPY with allow_pickle.
- Flask/werkzeug Response: a `str` or `bytes` view result is text/html; a `text/*` mimetype gets
  `; charset=utf-8`. A Response the handler returns itself (`worker.Response(encoders.encode(prediction,
  accept), mimetype=accept)`, as AWS's scikit-learn examples write output_fn) is what Flask sends: its
  status, its body and its Content-Type (sagemaker-containers `_transformer.py` transform() returns any
  non-tuple result as is; `_worker.py` Response defaults its mimetype to application/json).

The package itself is importable by user code, as in the image: the image environment
(../images/sklearn-1.2-1.lock) installs sagemaker-containers 2.8.6.post2 with Flask 1.1.1, so `from
sagemaker_containers.beta.framework import encoders, worker` gives the real encoders and Response.
There the image's defaults decode and encode with the library's own `_encoders.decode`/`encode` and
`_errors.UnsupportedFormatError` (`image_encoders`; the fork server of that environment preloads
them); the restatement of `_encoders.py` below serves only where the package is not installed (XGBoost
script mode in the XGBoost environment, ONNX on the scikit-learn image in the project's environment),
and the conformance suite (tests/conformance) holds both to the real container's answers. The rest of
the answer (the Transformer's and Flask's part, restated above) is made here, not by the library's
Flask app, which would need a server per worker. Two stand-ins make the import
behave as in the container: the library reads /opt/ml from SAGEMAKER_BASE_DIR at import, set to a folder
whose `model` and `code` link to the model and the code (profiles.opt_ml_stand_in); and its _mapping.py
subclasses `collections.Mapping`, an alias the image's Python (3.8) has and Python 3.10 removed, restored
below as the same class.

The XGBoost image's script mode (SAGEMAKER_PROGRAM set) runs on the same sagemaker-containers stack
with XGBoost defaults (aws/sagemaker-xgboost-container src/sagemaker_xgboost_container/serving.py):
model_fn loads the boosters at the model root, predict_fn is `booster.predict`.
"""

from __future__ import annotations

import collections
import collections.abc
import contextlib
import csv
import io
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from modeldrop.content_types import essence

from modeldrop_local.sagemaker.worker.profiles import BASE_DIR_ENV, DEFAULT_ACCEPT_ENV, DefaultModel
from modeldrop_local.sagemaker.worker.serving import ModelLoadError, Outcome, load_user_module

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
ANY = "*/*"
UTF8_TYPES = (JSON, CSV)
# werkzeug's get_content_type adds a charset to these besides text/* (werkzeug/utils.py).
_CHARSET_TYPES = {
    "application/ecmascript",
    "application/javascript",
    "application/sql",
    "application/xml",
    "application/xml-dtd",
    "application/xml-external-parsed-entity",
}


class UnsupportedFormatError(Exception):
    """sagemaker-containers' error for a content type no decoder or encoder is keyed by (its message
    as `_errors.UnsupportedFormatError`'s)."""

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"Content type {content_type} is not supported by this framework.\n\n"
            "Please implement input_fn to to deserialize the request data or an output_fn to\n"
            "serialize the response. For more information, see the SageMaker Python SDK README."
        )


# -------------------------------------------------------------------------- _encoders.py, restated


def json_to_numpy(text: str) -> Any:
    return np.array(json.loads(text))


class ClientError(Exception):
    """sagemaker-containers' `_errors.ClientError`: what its CSV codecs raise for a malformed body."""


def csv_to_numpy(text: str) -> Any:
    # As _encoders.csv_to_numpy with dtype=None: a failed cast keeps the string array (the ValueError
    # is swallowed), and the image's default_input_fn then fails on it; anything else is a ClientError.
    try:
        rows = csv.reader(io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True)
        array = np.array(list(rows)).squeeze()
        with contextlib.suppress(ValueError):
            array = array.astype(None)
    except Exception as error:
        raise ClientError(f"Error while decoding csv: {error}") from error
    return array


def npy_to_numpy(data: bytes) -> Any:
    return np.load(io.BytesIO(data), allow_pickle=True)


def array_to_json(array_like: Any) -> str:
    def default(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        return json.JSONEncoder().default(value)

    return json.dumps(array_like, default=default)


def array_to_csv(array_like: Any) -> str:
    array = np.array(array_like)
    if len(array.shape) == 1:
        array = np.reshape(array, (array.shape[0], 1))
    stream = io.StringIO()
    writer = csv.writer(
        stream, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True, strict=True
    )
    try:
        writer.writerows(array)
    except csv.Error as error:
        raise ClientError(f"Error while encoding csv: {error}") from error
    return stream.getvalue()


def array_to_npy(array_like: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array_like)
    return buffer.getvalue()


_DECODERS: dict[str, Callable[[Any], Any]] = {NPY: npy_to_numpy, CSV: csv_to_numpy, JSON: json_to_numpy}
_ENCODERS: dict[str, Callable[[Any], Any]] = {NPY: array_to_npy, CSV: array_to_csv, JSON: array_to_json}


def decode(data: Any, content_type: str) -> Any:
    try:  # as _encoders.decode: a KeyError inside the decoder reads as an unknown type too
        return _DECODERS[content_type](data)
    except KeyError:
        raise UnsupportedFormatError(content_type) from None


def encode(array_like: Any, content_type: str) -> Any:
    try:
        return _ENCODERS[content_type](array_like)
    except KeyError:
        raise UnsupportedFormatError(content_type) from None


class Encoders(NamedTuple):
    decode: Callable[[Any, str], Any]
    encode: Callable[[Any, str], Any]
    unsupported: type[Exception]  # raised for a content type no decoder or encoder is keyed by


RESTATED_ENCODERS = Encoders(decode, encode, UnsupportedFormatError)


def image_encoders() -> Encoders:
    """sagemaker-containers' own codecs where the package is installed (the scikit-learn image
    environment), else the restatement above. `_encoders` reads no setting when imported (unlike
    `_env`, which reads /opt/ml), so the fork server imports it ahead."""
    try:
        from sagemaker_containers import _encoders, _errors
    except ImportError:
        return RESTATED_ENCODERS
    return Encoders(_encoders.decode, _encoders.encode, _errors.UnsupportedFormatError)


IMAGE_ENCODERS = image_encoders()


# ------------------------------------------------------------- the images' default functions


def sklearn_input_fn(input_data: Any, content_type: str) -> Any:
    array = IMAGE_ENCODERS.decode(input_data, content_type)
    return array.astype(np.float32) if content_type in UTF8_TYPES else array


def sklearn_predict_fn(input_data: Any, model: Any) -> Any:
    return model.predict(input_data)


def output_fn(prediction: Any, accept: str) -> tuple[Any, str]:
    return IMAGE_ENCODERS.encode(prediction, accept), accept


def _no_model_fn(model_dir: str) -> Any:
    raise NotImplementedError("Please provide a model_fn implementation.")


def load_boosters(model_dir: str) -> Any:
    """The XGBoost image's loader: each regular root file, pickled or in XGBoost's own format."""
    from modeldrop_local.sagemaker.worker.xgboost_container import load_root_boosters

    boosters = load_root_boosters(Path(model_dir))
    return boosters[0] if len(boosters) == 1 else boosters


def xgboost_input_fn(input_data: Any, content_type: str) -> Any:
    from modeldrop_local.sagemaker.worker.xgboost_container import decode_to_dmatrix

    return decode_to_dmatrix(input_data, content_type)


def xgboost_predict_fn(input_data: Any, model: Any) -> Any:
    from modeldrop_local.sagemaker.worker.xgboost_container import predict_boosters

    return predict_boosters(model if isinstance(model, list) else [model], input_data)


_DEFAULTS: dict[DefaultModel, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    DefaultModel.NONE: (_no_model_fn, sklearn_input_fn, sklearn_predict_fn),
    DefaultModel.XGBOOST_BOOSTERS: (load_boosters, xgboost_input_fn, xgboost_predict_fn),
}


# ----------------------------------------------------------------------------- the handler


def with_charset(mimetype: str) -> str:
    if "charset" in mimetype:
        return mimetype
    kind = essence(mimetype)
    if kind.startswith("text/") or kind in _CHARSET_TYPES or kind.endswith("+xml"):
        return f"{mimetype}; charset=utf-8"
    return mimetype


def is_response(result: Any) -> bool:
    """A Flask/werkzeug Response (sagemaker_containers worker.Response is one), told without flask."""
    return all(hasattr(result, name) for name in ("status_code", "headers", "get_data"))


def flask_response(result: Any) -> tuple[int, bytes, str]:
    """What Flask makes of a view's return value (the Transformer returns the handler's result)."""
    if is_response(result):  # Flask sends a Response as it is: its status, body and Content-Type
        content_type = result.headers.get("Content-Type") or ""
        return int(result.status_code), bytes(result.get_data()), str(content_type)
    if isinstance(result, tuple) and len(result) == 2:
        body, mimetype = result
        return 200, _bytes(body), with_charset(str(mimetype))
    if isinstance(result, str | bytes | bytearray):
        return 200, _bytes(result), "text/html; charset=utf-8"
    if isinstance(result, dict):  # Flask >= 1.1 jsonifies a dict (compact, with a trailing newline)
        return 200, (json.dumps(result, separators=(",", ":")) + "\n").encode(), JSON
    raise TypeError(
        "The view function did not return a valid response: the handler returned "
        f"{type(result).__name__}; return bytes or str, or a (body, content_type) tuple"
    )


def _bytes(body: Any) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    return str(body).encode("utf-8")


def restore_collections_mapping() -> None:
    """`collections.Mapping` as on the image's Python 3.8 (Python 3.10 removed the alias).

    sagemaker-containers 2.8.6.post2 `_mapping.py` defines `class MappingMixin(collections.Mapping)`, which
    `_worker.py` imports: without the alias, importing the package fails. The same class, restored.
    """
    if not hasattr(collections, "Mapping"):
        collections.Mapping = collections.abc.Mapping  # type: ignore[attr-defined]


class SageMakerContainersHandler:
    """A user module served as the scikit-learn image (or XGBoost script mode) serves it."""

    def __init__(
        self,
        model_dir: Path,
        code_dir: Path,
        module: str,
        default_model: DefaultModel,
        *,
        base_dir: Path | None = None,
    ) -> None:
        self.model_dir = model_dir
        if base_dir is not None:  # the /opt/ml that sagemaker_containers._env reads when user code imports it
            os.environ[BASE_DIR_ENV] = str(base_dir)
        restore_collections_mapping()
        user = load_user_module(code_dir, module)
        default_model_fn, default_input_fn, default_predict_fn = _DEFAULTS[default_model]

        def user_fn(name: str) -> Callable[..., Any] | None:
            function = getattr(user, name, None)
            return function if callable(function) else None

        model_fn = user_fn("model_fn")
        if model_fn is None and default_model is DefaultModel.NONE:
            raise ModelLoadError(
                f"{module}.py defines no model_fn, and the scikit-learn image has no loader of its own "
                "(its default_model_fn raises NotImplementedError: 'Please provide a model_fn "
                "implementation.'): /ping answers 500. Define model_fn(model_dir) in "
                f"{module}.py, e.g. return joblib.load(os.path.join(model_dir, 'model.joblib'))"
            )
        self._transform_fn = user_fn("transform_fn")
        input_fn, predict_fn, custom_output_fn = (
            user_fn("input_fn"),
            user_fn("predict_fn"),
            user_fn("output_fn"),
        )
        if self._transform_fn is not None and (input_fn or predict_fn or custom_output_fn):
            raise ModelLoadError(
                "Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn "
                f"({module}.py; sagemaker_sklearn_container.exceptions.UserError at import)"
            )
        self._input_fn = input_fn or default_input_fn
        self._predict_fn = predict_fn or default_predict_fn
        self._output_fn = custom_output_fn or output_fn
        self._default_accept = os.environ.get(DEFAULT_ACCEPT_ENV) or JSON
        self.model = (model_fn or default_model_fn)(str(model_dir))

    def invoke(self, body: bytes, content_type: str, accept: str, request_id: str) -> Outcome:
        content_type = content_type or JSON
        accept = accept if accept and accept != ANY else self._default_accept
        content: Any = body.decode("utf-8", "replace") if content_type in UTF8_TYPES else body
        timings: dict[str, float] = {}
        try:
            if self._transform_fn is not None:
                started = time.perf_counter()
                result = self._transform_fn(self.model, content, content_type, accept)
                timings["transform"] = (time.perf_counter() - started) * 1000
            else:
                started = time.perf_counter()
                data = self._input_fn(content, content_type)
                timings["input"] = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                prediction = self._predict_fn(data, self.model)
                timings["predict"] = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                result = self._output_fn(prediction, accept)
                timings["output"] = (time.perf_counter() - started) * 1000
            status, payload, response_type = flask_response(result)
        except Exception as error:
            # Every handler is wrapped in ClientError, which nothing catches: Flask's 500. The real
            # body is Flask's HTML error page; the traceback goes to the log (CloudWatch on AWS).
            traceback.print_exc(file=sys.stderr)
            message = str(error) or type(error).__name__
            if isinstance(error, IMAGE_ENCODERS.unsupported):
                message = (
                    f"UnsupportedFormatError: {message} (no decoder/encoder for this exact content type)"
                )
            return Outcome(
                500, f"Internal Server Error: {message}".encode(), "text/html; charset=utf-8", timings
            )
        return Outcome(status, payload, response_type, timings)
