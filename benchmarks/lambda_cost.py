"""Lambda cost: cold import time of each function's module and the size of each `sam build` artifact.

Import time is what every Lambda cold start pays before the handler runs. It is measured with
`python -X importtime` in a fresh interpreter, with the layer on the path as Lambda puts it, and set
against `import boto3` in the same run (the runtime's own floor).

Run alone: `python -m benchmarks.lambda_cost` (after `sam build` for the artifact sizes).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from benchmarks.common import REPO_ROOT, write_result

RUNS = 5
LAYER_PATH = REPO_ROOT / "layers" / "modeldrop"
BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
# Values the settings models need at import; the functions read them from the template on AWS.
FUNCTION_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "modeldrop",
    "POWERTOOLS_METRICS_NAMESPACE": "modeldrop",
    "MODELS_BUCKET": "bench-bucket",
    "DEPLOYMENTS_TABLE": "bench-deployments",
    "IDEMPOTENCY_TABLE": "bench-idempotency",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:bench",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/bench",
}


def functions_in_template() -> dict[str, Path]:
    template, _ = decode(str(REPO_ROOT / "template.yaml"))
    if template is None:
        raise RuntimeError("template.yaml could not be parsed")
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::Serverless::Function":
            found[logical_id] = REPO_ROOT / resource["Properties"]["CodeUri"]
    return found


def import_time_us(module: str, cwd: Path) -> int:
    """Cumulative import time of `module` in a fresh interpreter (the last importtime line is it)."""
    env = {**os.environ, **FUNCTION_ENV, "PYTHONPATH": f"{cwd}:{LAYER_PATH}"}
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    pattern = re.compile(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*(\S+)")
    for line in reversed(completed.stderr.splitlines()):
        match = pattern.search(line)
        if match and match.group(2) == module:
            return int(match.group(1))
    raise RuntimeError(f"no importtime line for {module}: {completed.stderr[-500:]}")


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run() -> dict[str, Any]:
    baseline = statistics.median(import_time_us("boto3", REPO_ROOT) for _ in range(RUNS))
    rows = []
    for logical_id, code_dir in functions_in_template().items():
        times = [import_time_us("app", code_dir) for _ in range(RUNS)]
        median_us = statistics.median(times)
        build = BUILD_DIR / logical_id
        rows.append(
            {
                "function": logical_id,
                "import_ms_p50": round(median_us / 1000, 1),
                "ratio_to_boto3": round(median_us / baseline, 2),
                "artifact_kb": round(directory_bytes(build) / 1024, 1) if build.exists() else None,
            }
        )
    layer_build = BUILD_DIR / "ModeldropLayer"
    result = {
        "baseline_import_boto3_ms": round(baseline / 1000, 1),
        "functions": rows,
        "layer_artifact_kb": round(directory_bytes(layer_build) / 1024, 1) if layer_build.exists() else None,
    }
    write_result("lambda_cost", result)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
