"""Pipeline: upload → InService on the local cloud, by model size.

The whole path runs: S3 PutObject → OnUpload (streams and checks the tarball, copies the pinned version)
→ CreateModel/CreateEndpointConfig/CreateEndpoint → local SageMaker downloads, extracts and test-loads
the model → the deploy state machine sees InService (it polls every PollIntervalSeconds = 1 here, so
up to a second of each figure is the poll interval) → the deployment record says InService.
Baseline: the S3 upload alone, and the 1 MB model's time (ratios).
Run alone: `python -m benchmarks.pipeline [--sizes 1 100 500]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from modeldrop.preflight import SERVERLESS_TOTAL_CONCURRENCY
from modeldrop_local.demo import throwaway_cloud
from modeldrop_local.example_models import build_padded_model
from modeldrop_local.service_quotas import set_quota

from benchmarks.common import write_result
from benchmarks.local_cloud import upload_and_follow

SIZES_MB = (1, 100, 500)


def run(sizes_mb: tuple[int, ...] = SIZES_MB) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="modeldrop-pipeline-") as tmp:
        workdir = Path(tmp)
        # One endpoint per size at the default MaxConcurrency (5) outgrows the local cloud's default
        # serverless concurrency quota (10, as a new AWS account's): raise it, as an account owner would.
        set_quota(SERVERLESS_TOTAL_CONCURRENCY.code, 200)
        with throwaway_cloud(workdir) as (_cloud, stack):
            for size in sizes_mb:
                tarball = build_padded_model(workdir / f"model-{size}", size)
                total = upload_and_follow(stack, tarball, f"size-{size}mb")
                rows.append(
                    {
                        "size_mb": round(tarball.stat().st_size / 2**20, 1),
                        "upload_to_inservice_s": round(total, 2),
                    }
                )
                tarball.unlink()
    smallest = rows[0]["upload_to_inservice_s"]
    for row in rows:
        row["ratio_to_smallest"] = round(row["upload_to_inservice_s"] / smallest, 2)
    result = {"poll_interval_s": 1, "rows": rows}
    write_result("pipeline", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES_MB))
    print(json.dumps(run(tuple(parser.parse_args().sizes)), indent=2))
