"""Scale: what 50 deployed, idle (scaled-to-zero) endpoints hold, against one, and their cold start.

Memory is the resident set of the local SageMaker process and every process below it (fork servers,
workers), read with psutil once the endpoints have scaled to zero.
Run alone: `python -m benchmarks.scale [--endpoints N]`.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from modeldrop_local import example_models

from benchmarks.cold_start import IDLE_TIMEOUT_S, cold_samples, invoke_ms
from benchmarks.common import command_line, write_result
from benchmarks.local_cloud import LocalSageMaker, local_sagemaker


def server_footprint(cloud: LocalSageMaker) -> dict[str, float]:
    """RSS of the process listening on the local SageMaker port, plus its descendants."""
    listener = next(
        c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == cloud.port and c.pid
    )
    root = psutil.Process(listener)
    procs = [root, *root.children(recursive=True)]
    return {
        "rss_mb": round(sum(p.memory_info().rss for p in procs) / 2**20, 1),
        "server_rss_mb": round(root.memory_info().rss / 2**20, 1),
        "processes": len(procs),
    }


def settle() -> None:
    # Benchmarks may wait on the clock: scale-to-zero happens after the idle time.
    time.sleep(IDLE_TIMEOUT_S + 2.0)


def run(endpoints: int = 50, samples: int = 5) -> dict[str, Any]:
    body = json.dumps(example_models.iris_payload(4)).encode()
    with (
        tempfile.TemporaryDirectory(prefix="modeldrop-scale-") as tmp,
        local_sagemaker(IDLE_TIMEOUT_S) as cloud,
    ):
        tarball = example_models.build_sklearn_iris(Path(tmp) / "iris")
        deploy_s = [cloud.deploy("scale-0", tarball, memory_mb=1024)]
        invoke_ms(cloud.port, "scale-0", body)
        settle()
        one = server_footprint(cloud)
        cold_one = cold_samples(cloud, "scale-0", body, samples)
        for i in range(1, endpoints):
            deploy_s.append(cloud.deploy(f"scale-{i}", tarball, memory_mb=1024))
        settle()
        many = server_footprint(cloud)
        cold_many = cold_samples(cloud, f"scale-{endpoints - 1}", body, samples)
    per_endpoint_mb = (many["rss_mb"] - one["rss_mb"]) / max(1, endpoints - 1)
    result = {
        "endpoints": endpoints,
        "one_endpoint": one,
        "all_endpoints": many,
        "memory_per_idle_endpoint_mb": round(per_endpoint_mb, 2),
        # Workers of idle endpoints are gone; what stays is the server and its fork servers, shared by all.
        "processes_per_idle_endpoint": round(
            (many["processes"] - one["processes"]) / max(1, endpoints - 1), 2
        ),
        "deploy_to_inservice_p50_s": round(statistics.median(deploy_s), 2),
        "cold_p50_ms_one": round(statistics.median(cold_one), 1),
        "cold_p50_ms_all": round(statistics.median(cold_many), 1),
        "cold_ratio_all_vs_one": round(statistics.median(cold_many) / statistics.median(cold_one), 2),
    }
    write_result("scale", result)
    return result


if __name__ == "__main__":
    command_line(run, __doc__, "--endpoints", 50)
