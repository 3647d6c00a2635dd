"""Running the local SageMaker on its own port, with the local cloud's one HTTP server (`http_server.py`)."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from modeldrop_local.http_server import WSGIServer
from modeldrop_local.sagemaker.app import LocalSageMakerApp, create_app
from modeldrop_local.sagemaker.lifecycle import Clock
from modeldrop_local.sagemaker.pool import LauncherLike
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings

# SageMaker's runtime limit is 6 MB for a real-time payload and 4 MB serverless: the app answers
# those with SageMaker's own ValidationError, so the server lets a little more through to it.
MAX_BODY_BYTES = 16 << 20


def make_server(settings: LocalSageMakerSettings, app: LocalSageMakerApp) -> WSGIServer:
    max_body_bytes = max(MAX_BODY_BYTES, settings.max_payload_bytes + 1)
    return WSGIServer(settings.host, settings.port, app, max_body_bytes=max_body_bytes, name="sagemaker")


@dataclass
class RunningServer:
    app: LocalSageMakerApp
    server: WSGIServer

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
        self.app.close()


def start_in_thread(
    settings: LocalSageMakerSettings, launcher: LauncherLike | None = None, *, clock: Clock | None = None
) -> RunningServer:
    """Serve on settings.host:settings.port (0: a free port) from a daemon thread; `.stop()` ends it."""
    app = create_app(settings, launcher, clock=clock)
    server = make_server(settings, app)
    server.start()
    return RunningServer(app, server)


def serve(settings: LocalSageMakerSettings) -> None:
    """Serve in the foreground until interrupted, then stop every worker."""
    app = create_app(settings)
    server = make_server(settings, app)
    print(
        f"local SageMaker on http://{settings.host}:{server.port} (state in {settings.state_dir})", flush=True
    )

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM too must stop the workers (fork servers are our children)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        app.close()
