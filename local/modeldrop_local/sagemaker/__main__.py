"""python -m modeldrop_local.sagemaker --port 8089 --state-dir .modeldrop/sagemaker --s3-endpoint-url ..."""

from __future__ import annotations

import argparse
from pathlib import Path

from modeldrop_local.sagemaker.server import serve
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modeldrop_local.sagemaker", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--state-dir", type=Path, default=Path(".modeldrop/sagemaker"))
    parser.add_argument("--s3-endpoint-url", default=None, help="S3 endpoint ModelDataUrl is read from")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--idle-timeout", type=float, default=300.0, help="seconds before an idle worker stops"
    )
    args = parser.parse_args(argv)
    serve(
        LocalSageMakerSettings(
            state_dir=args.state_dir,
            s3_endpoint_url=args.s3_endpoint_url,
            region=args.region,
            idle_timeout_s=args.idle_timeout,
            host=args.host,
            port=args.port,
        )
    )


if __name__ == "__main__":
    main()
