"""What a serving container answers for a model tarball, computed without an endpoint.

What "prediction" means, per builder (the JSON a serving container returns for a JSON list of rows):
- sklearn, sklearn forest, padded: `model.predict(rows)` -> class ids, e.g. [0, 1, 2]
- onnx: the model's first output ("label") -> class ids, e.g. [0, 1, 2]
- xgboost: `Booster.predict` with objective multi:softmax -> class ids as floats, e.g. [0.0, 1.0, 2.0]
- custom inference: output_fn's JSON, {"predictions": [0, 1, 2], "labels": ["setosa", ...]}
- custom weights: output_fn's JSON, class ids from numpy weights (no framework artifact), e.g. [0, 1, 2]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from modeldrop.frameworks import Framework
from modeldrop.tarball import TarballLimits, safe_extract

from modeldrop_local.example_models import runner
from modeldrop_local.example_models.image_training import run_in_image


def predict_in_process(tarball_path: Path | str, rows: list[list[float]]) -> Any:
    """Load the tarball's model as its serving container would, and predict rows.

    A pickle is loaded in the scikit-learn image's pinned environment, as the endpoint loads it (the
    handler code of the tarball runs there too); ONNX and XGBoost models load here. Returns the
    decoded JSON the endpoint is expected to answer (see the module docstring).
    """
    with tempfile.TemporaryDirectory(prefix="modeldrop-predict-") as tmp:
        model_dir = Path(tmp) / "model"
        with Path(tarball_path).open("rb") as stream:
            report = safe_extract(stream, model_dir, TarballLimits(max_uncompressed_bytes=2**40))
        request = {
            "command": "predict",
            "model_dir": str(model_dir),
            "rows": rows,
            "has_code": report.has_inference_code,
            "artifact": str(model_dir / report.artifacts[0]) if report.artifacts else None,
            "framework": report.framework.value if report.framework else None,
        }
        if report.framework in (Framework.ONNX, Framework.XGBOOST):
            return runner.predict(request)
        return run_in_image(Framework.SKLEARN, request)["prediction"]
