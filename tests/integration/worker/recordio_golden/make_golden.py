"""Writes the RecordIO-protobuf golden bodies with the SageMaker Python SDK's own encoder.

Run under .venv-sdk (sagemaker<3, with scipy for the sparse writer), from the repository root:

    cd tests/integration/worker/recordio_golden && ../../../../.venv-sdk/bin/python make_golden.py .

The bodies are what a client sends with `sagemaker.amazon.common.write_numpy_to_dense_tensor` /
`write_spmatrix_to_sparse_tensor` (sagemaker-python-sdk src/sagemaker/amazon/common.py), as the
`RecordSerializer` does. They are committed so that the worker tests run without .venv-sdk; the sdk-marked
test in test_recordio_protobuf.py regenerates them and checks they are unchanged.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

# The example iris rows (modeldrop_local.example_models.iris_payload(3)); the tests check they still are.
ROWS = [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]
INT_ROWS = [[5, 3, 1, 0], [7, 3, 5, 1], [6, 3, 6, 2]]
LABELS = [0, 1, 2]
# name -> (rows, numpy dtype, sparse, with labels)
CASES = {
    "dense_float32": (ROWS, "float32", False, True),
    "dense_float64": (ROWS, "float64", False, False),
    # serializer_utils._resolve_type writes an Int32Tensor for numpy's default int (int64 here)
    "dense_int32": (INT_ROWS, "int64", False, True),
    "sparse_float32": (ROWS, "float32", True, True),
    "sparse_float64": (ROWS, "float64", True, False),
}


def encode(name: str) -> bytes:
    import numpy as np
    import scipy.sparse
    from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor

    rows, dtype, sparse, with_labels = CASES[name]
    array = np.array(rows, dtype=dtype)
    labels = np.array(LABELS, dtype="float32") if with_labels else None
    buffer = io.BytesIO()
    if sparse:
        write_spmatrix_to_sparse_tensor(buffer, scipy.sparse.csr_matrix(array), labels)
    else:
        write_numpy_to_dense_tensor(buffer, array, labels)
    return buffer.getvalue()


def main(out_dir: str) -> None:
    for name in CASES:
        (Path(out_dir) / f"{name}.rec").write_bytes(encode(name))


if __name__ == "__main__":
    main(sys.argv[1])
