"""TorchScript: `model.pt` loaded with torch.jit on the CPU, called on a float32 tensor.

PyTorch is not a dependency of the local SageMaker: without it the model fails to load, saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modeldrop_local.sagemaker.worker.handler_errors import ModelLoadError, bad_input


def load(artifact: Path) -> Any:
    try:
        import torch
    except ImportError as error:
        raise ModelLoadError(
            "a TorchScript model needs PyTorch, which is not installed in this local SageMaker "
            "(pip install torch)"
        ) from error
    model = torch.jit.load(str(artifact), map_location="cpu")
    model.eval()
    return model


def predict(data: Any, model: Any) -> Any:
    import torch

    try:
        tensor = torch.from_numpy(np.asarray(data, dtype=np.float32))
    except (ValueError, TypeError) as error:
        raise bad_input(error) from error
    with torch.no_grad():
        output = model(tensor)
    return output.numpy() if hasattr(output, "numpy") else output
