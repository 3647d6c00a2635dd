"""Trains and predicts the example models, in whichever environment runs this file.

image_training.py runs it under the pinned environment of the image a model is for (the scikit-learn
1.2-1 image's scikit-learn 1.2.1 and numpy 1.24.1, the XGBoost 1.7-1 image's xgboost 1.7.4; see
sagemaker/worker/image_envs.py), so the pickles and boosters it writes load on that image, and it
predicts there too: a scikit-learn 1.2.1 forest does not unpickle under a newer scikit-learn. It
imports nothing of modeldrop (that environment has only the image's libraries) and nothing but the
standard library at module level, so prediction.py can import it as well.

As a script: one JSON request on stdin, one JSON answer on stdout.
  {"command": "train", "model": "logistic" | "forest" | "pipeline" | "xgboost" | "knn", "n_estimators": N,
   "features": [[...]], "targets": [...], "random_state": 0, "out": "<artifact path>"}
   (knn: "n_samples" synthetic iris-shaped rows instead of features and targets)
   -> {"libraries": {name: version}}
  {"command": "predict", "model_dir": "...", "rows": [[...]], "artifact": "<path>" | null,
   "framework": "sklearn" | ..., "has_code": bool} -> {"prediction": ...}
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# The distributions whose versions decide what loads the artifact, recorded in the tarball.
RECORDED = {
    "sklearn": ("scikit-learn", "numpy", "scipy", "joblib"),
    "xgboost": ("xgboost", "numpy"),
}


def versions(family: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in RECORDED[family]:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def train(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    seed = int(request["random_state"])
    if kind_needs_synthetic_data := request["model"] == "knn":
        from sklearn.datasets import make_classification

        features, targets = make_classification(
            n_samples=int(request["n_samples"]),
            n_features=4,
            n_informative=3,
            n_redundant=0,
            n_classes=3,
            random_state=seed,
        )
    else:
        features = np.asarray(request["features"], dtype=np.float64)
        targets = np.asarray(request["targets"])
    out = Path(request["out"])
    kind = request["model"]
    if kind == "xgboost":
        import xgboost

        booster = xgboost.train(
            {"objective": "multi:softmax", "num_class": 3, "max_depth": 3, "seed": seed, "nthread": 1},
            xgboost.DMatrix(features, label=targets),
            num_boost_round=20,
        )
        out.write_bytes(bytes(booster.save_raw("ubj")))  # UBJSON: loads on the 1.7 image, not on 1.5/1.3
        return {"libraries": versions("xgboost")}
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind_needs_synthetic_data:  # KNN stores its training set: a big model from a small request
        from sklearn.neighbors import KNeighborsClassifier

        model: Any = KNeighborsClassifier(n_neighbors=5)
    elif kind == "forest":
        model = RandomForestClassifier(n_estimators=int(request["n_estimators"]), random_state=seed)
    elif kind == "pipeline":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    elif kind == "logistic":
        model = LogisticRegression(max_iter=1000, random_state=seed)
    else:
        raise ValueError(f"unknown example model {kind!r}")
    joblib.dump(model.fit(features, targets), out)
    return {"libraries": versions("sklearn")}


def _load_module(path: Path) -> Any:
    name = f"modeldrop_example_inference_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def predict(request: dict[str, Any]) -> Any:
    """What the endpoint answers for a JSON list of rows (see prediction.py's docstring)."""
    import numpy as np

    model_dir = Path(request["model_dir"])
    rows = request["rows"]
    if request["has_code"]:
        # The handlers the module defines; the scikit-learn container's defaults for the others
        # (JSON to an array, model.predict, the array to JSON).
        handlers = _load_module(model_dir / "code" / "inference.py")
        model = handlers.model_fn(str(model_dir))
        input_fn = getattr(handlers, "input_fn", lambda body, _: np.asarray(json.loads(body)))
        predict_fn = getattr(handlers, "predict_fn", lambda data, loaded: loaded.predict(data))
        output_fn = getattr(handlers, "output_fn", lambda prediction, _: json.dumps(prediction.tolist()))
        body = output_fn(
            predict_fn(input_fn(json.dumps(rows), "application/json"), model), "application/json"
        )
        return json.loads(body)
    features = np.asarray(rows, dtype=np.float64)
    artifact = Path(request["artifact"])
    framework = request["framework"]
    if framework == "sklearn":
        import joblib

        return joblib.load(artifact).predict(features).tolist()
    if framework == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        return session.run(None, {input_name: features.astype(np.float32)})[0].tolist()
    if framework == "xgboost":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(bytearray(artifact.read_bytes()))
        return booster.predict(xgboost.DMatrix(features)).tolist()
    raise ValueError(f"no in-process loader for framework {framework}")


def main() -> None:
    request = json.loads(sys.stdin.read())
    answer = train(request) if request["command"] == "train" else {"prediction": predict(request)}
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
