"""Upload outcome: seconds from an S3 upload until its outcome (Rejected or Deploying) is recorded.

A hostile tarball (a member escaping the archive root) is uploaded to the local cloud: alone, while
another model's deployment is being followed by its state machine, and as one of a burst of uploads of
different models at once (each a real iris tarball). The time runs from the PutObject call to the
deployment record leaving Queued, as `modeldrop deploy` would see it. The first upload of a function's
worker is served by its spare worker, started with the cloud.
Run alone: `python -m benchmarks.upload_outcome [--burst 6]`.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from modeldrop_local.demo import throwaway_cloud
from modeldrop_local.example_models import build_sklearn_iris
from modeldrop_local.stack_client import StackClient

from benchmarks.common import command_line, write_result
from reliability.tarballs import escaping_tarball

TARGET_S = 1.0


def upload_until_recorded(
    stack: StackClient, tarball: Path, model: str, timeout_s: float = 60
) -> dict[str, Any]:
    records = stack.records()
    started = time.perf_counter()
    version = stack.upload(tarball, model)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for deployment in records.list_deployments(model, limit=5):
            if deployment.object_version == version and str(deployment.status) != "Queued":
                return {"seconds": round(time.perf_counter() - started, 3), "status": str(deployment.status)}
        time.sleep(0.01)
    raise TimeoutError(f"no outcome for {model} after {timeout_s} s")


def run(burst: int = 6) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modeldrop-outcome-") as tmp:
        workdir = Path(tmp)
        hostile = escaping_tarball(workdir / "hostile.tar.gz")
        iris = build_sklearn_iris(workdir / "iris")
        with throwaway_cloud(workdir) as (_cloud, stack):
            first = upload_until_recorded(stack, hostile, "hostile-first")
            rows.append({"case": "first upload after start (spare worker)", **first})
            rows.append(
                {"case": "next upload (warm worker)", **upload_until_recorded(stack, hostile, "hostile-warm")}
            )
            following = upload_until_recorded(stack, iris, "deploying")
            rows.append({"case": "a good model (its state machine then waits)", **following})
            during = upload_until_recorded(stack, hostile, "hostile-during")
            rows.append({"case": "while another model's state machine waits", **during})
            results: dict[str, dict[str, Any]] = {}

            def upload(name: str, tarball: Path) -> None:
                results[name] = upload_until_recorded(stack, tarball, name)

            threads = [threading.Thread(target=upload, args=(f"burst-{i}", iris)) for i in range(burst)]
            threads.append(threading.Thread(target=upload, args=("hostile-burst", hostile)))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rows.append(
                {"case": f"hostile upload among {burst} good uploads at once", **results["hostile-burst"]}
            )
            slowest = max(
                (r["seconds"] for name, r in results.items() if name != "hostile-burst"), default=0.0
            )
            rows.append(
                {
                    "case": f"slowest of the {burst} good uploads at once",
                    "seconds": slowest,
                    "status": "Deploying",
                }
            )
    for row in rows:
        row["within_1s"] = row["seconds"] <= TARGET_S
    result = {"burst": burst, "target_s": TARGET_S, "rows": rows}
    write_result("upload_outcome", result)
    return result


if __name__ == "__main__":
    command_line(run, __doc__, "--burst", 6)
