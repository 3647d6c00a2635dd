"""The standalone local SageMaker's own WSGI app, served by one of the candidate HTTP servers.

Started by the HTTP-server benchmark as
`python -m benchmarks.servers.local_sagemaker_on SERVER PORT STATE_DIR S3_URL`, with SERVER one of
SERVERS. Every candidate serves the same app object (`create_app`), in ONE process, so the registry and
the endpoints' workers are the same as under `python -m modeldrop_local.sagemaker`:

- waitress: the product's server (`modeldrop_local.sagemaker.server.make_server`, waitress 3.0.2);
- granian: granian's WSGI interface, one worker process that builds the app itself (`app_from_env`,
  a factory), its requests run on granian's blocking threads;
- granian-embedded: granian's embedded server (in the calling process, on its asyncio loop; ASGI only,
  so the WSGI app is wrapped by a2wsgi, whose thread pool runs it): the one way granian serves from
  inside a process that holds other state, as the edge and the REST front must (granian 2.8's WSGI
  interface runs the app only in worker processes, or in threads on a free-threaded Python);
- uvicorn: uvicorn with the httptools parser, the WSGI app wrapped as ASGI by a2wsgi (its thread pool);
- cheroot: cheroot's threaded WSGI server.

Each pool gets the product's thread count (`DEFAULT_THREADS`): calls between the cloud's parts nest, so
the pool size is not a tuning knob here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from modeldrop_local.http_server import DEFAULT_THREADS
from modeldrop_local.sagemaker.app import LocalSageMakerApp, create_app
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings

SERVERS = ("waitress", "granian", "granian-embedded", "uvicorn", "cheroot")
HOST = "127.0.0.1"


def _settings(port: int, state_dir: str, s3_url: str) -> LocalSageMakerSettings:
    return LocalSageMakerSettings(
        state_dir=Path(state_dir), s3_endpoint_url=s3_url, idle_timeout_s=300.0, host=HOST, port=port
    )


def app_from_env() -> LocalSageMakerApp:
    """granian's factory: granian imports its target in the worker process, so the app is built there."""
    return create_app(
        _settings(int(os.environ["BENCH_PORT"]), os.environ["BENCH_STATE_DIR"], os.environ["BENCH_S3_URL"])
    )


def serve(server: str, port: int, state_dir: str, s3_url: str) -> None:
    if server == "granian":
        from granian.constants import Interfaces
        from granian.server import Server

        os.environ.update({"BENCH_PORT": str(port), "BENCH_STATE_DIR": state_dir, "BENCH_S3_URL": s3_url})
        Server(
            "benchmarks.servers.local_sagemaker_on:app_from_env",
            address=HOST,
            port=port,
            interface=Interfaces.WSGI,
            workers=1,  # one process holds the app: its state (registry, workers) stays single
            blocking_threads=DEFAULT_THREADS,
            factory=True,
            log_access=False,
        ).serve()
        return

    settings = _settings(port, state_dir, s3_url)
    app = create_app(settings)
    try:
        if server == "waitress":
            from modeldrop_local.sagemaker.server import make_server

            make_server(settings, app).serve_forever()
        elif server == "granian-embedded":
            import asyncio

            from granian.constants import Interfaces
            from granian.server.embed import Server as EmbeddedServer

            from benchmarks.servers.in_process import coroutine_receive_asgi

            asgi_app = coroutine_receive_asgi(app)
            asyncio.run(
                EmbeddedServer(asgi_app, address=HOST, port=port, interface=Interfaces.ASGINL).serve()
            )
        elif server == "uvicorn":
            import uvicorn
            from a2wsgi import WSGIMiddleware

            asgi_app = WSGIMiddleware(app, workers=DEFAULT_THREADS)  # type: ignore[arg-type]
            uvicorn.run(
                asgi_app, host=HOST, port=port, http="httptools", log_level="warning", access_log=False
            )
        elif server == "cheroot":
            from cheroot.wsgi import Server as CherootServer

            CherootServer((HOST, port), app, numthreads=DEFAULT_THREADS).safe_start()
        else:
            raise SystemExit(f"unknown server {server!r}: one of {', '.join(SERVERS)}")
    finally:
        app.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
