"""Repack: what writing the deployed copy with a generated code/inference.py costs, vs a server-side copy.

OnUpload pins the inspected upload for SageMaker. When nothing is added it is one CopyObject (S3 copies
server-side: no bytes pass through the function). When the scikit-learn image needs a handler it is
GetObject → tarfile stream → new tar.gz → multipart upload (modeldrop.repack), all inside the function.
Measured here, in one run, on a real ~100 MB model tarball (the iris model plus incompressible padding,
without code/): moto's in-process S3 for both paths (so S3 itself costs about the same on both sides and
the ratio is the function's extra work), and the repack's CPU alone (file → null sink) at deflate
level 0 (stored, used above 1 GiB), the level used up to 1 GiB (repack.COMPRESS_LEVEL) and gzip's
default 6. Peak Python memory of the repack by tracemalloc.
Run alone: `python -m benchmarks.repack [--size-mb 100] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from modeldrop import repack
from modeldrop.deploy import _SINGLE_COPY_UP_TO_5_GIB
from modeldrop.serving_setup import sklearn_inference_py
from modeldrop.tarball import TarballLimits
from modeldrop_local.example_models import build_padded_model
from moto import mock_aws

from benchmarks.common import write_result

ADD = {"code/inference.py": sklearn_inference_py("model.joblib")}
LIMITS = TarballLimits(max_uncompressed_bytes=8 * 2**30, max_member_bytes=8 * 2**30)


class _NullSink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


class _DiskS3:
    def __init__(self, path: Path) -> None:
        self._path = path

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": self._path.open("rb")}

    def upload_fileobj(self, fileobj: Any, *_: Any, Config: Any) -> None:
        while fileobj.read(Config.multipart_chunksize):
            pass


def _best(repeats: int, action: Callable[[], None]) -> tuple[float, float]:
    """(median, min) seconds of `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def run(size_mb: int = 100, repeats: int = 3) -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with tempfile.TemporaryDirectory(prefix="modeldrop-repack-") as tmp:
        tarball = build_padded_model(Path(tmp), size_mb, with_handler=False)
        body = tarball.read_bytes()
        rows: dict[str, Any] = {"tarball_mb": round(len(body) / 2**20, 1)}

        for level in sorted({0, repack.COMPRESS_LEVEL, 6}):
            median, fastest = _best(
                repeats,
                lambda level=level: repack.write_repacked(
                    tarball.open("rb"), _NullSink(), add=ADD, limits=LIMITS, compresslevel=level
                ),
            )
            rows[f"cpu_only_level{level}_s"] = round(median, 3)
            rows[f"cpu_only_level{level}_mb_per_s"] = round(len(body) / 2**20 / fastest, 1)

        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="bench")
            s3.put_object(Bucket="bench", Key="models/m/model.tar.gz", Body=body)
            source = {"Bucket": "bench", "Key": "models/m/model.tar.gz"}
            copy_median, _ = _best(
                repeats,
                lambda: s3.copy(source, "bench", "deployments/copy.tar.gz", Config=_SINGLE_COPY_UP_TO_5_GIB),
            )
            repack_median, _ = _best(
                repeats,
                lambda: repack.repack_to_s3(
                    s3, source, "bench", "deployments/repacked.tar.gz", add=ADD, limits=LIMITS
                ),
            )
            repacked_size = s3.head_object(Bucket="bench", Key="deployments/repacked.tar.gz")["ContentLength"]

        # moto keeps every object in this process, so memory is traced against a stand-in S3 that streams the
        # source from disk and reads the upload in s3transfer-sized parts, discarding them.
        tracemalloc.start()
        baseline, _ = tracemalloc.get_traced_memory()
        repack.repack_to_s3(_DiskS3(tarball), source, "bench", "traced", add=ADD, limits=LIMITS)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        rows.update(
            {
                "server_side_copy_s": round(copy_median, 3),
                "repack_s": round(repack_median, 3),
                "repack_to_copy_ratio": round(repack_median / copy_median, 1),
                "repacked_mb": round(repacked_size / 2**20, 1),
                "repack_peak_python_mib_over_baseline": round((peak - baseline) / 2**20, 1),
                "repack_parts_in_flight_mib": repack.UPLOAD_CONFIG.multipart_chunksize
                * repack.UPLOAD_CONFIG.max_in_memory_upload_chunks
                / 2**20,
            }
        )
    result = {
        "what": "pinned copy of a model without code/: server-side CopyObject vs streamed repack (moto S3)",
        "repeats": repeats,
        "compress_level": repack.COMPRESS_LEVEL,
        "note": (
            "moto copies in process memory, so on AWS the server-side copy costs the function ~nothing while "
            "the repack's time is dominated by the CPU row and the S3 transfer at Lambda's network speed"
        ),
        "rows": [rows],
    }
    write_result("repack", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    print(json.dumps(run(arguments.size_mb, arguments.repeats), indent=2))
