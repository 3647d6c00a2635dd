"""Running the local SageMaker on its own port (threaded werkzeug server)."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server

from modeldrop_local.sagemaker.app import LocalSageMakerApp, create_app
from modeldrop_local.sagemaker.pool import LauncherLike
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings


@dataclass
class RunningServer:
    app: LocalSageMakerApp
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
        self.app.close()


def start_in_thread(settings: LocalSageMakerSettings, launcher: LauncherLike | None = None) -> RunningServer:
    """Serve on settings.host:settings.port (0: a free port) from a daemon thread; `.stop()` ends it."""
    app = create_app(settings, launcher)
    server = make_server(settings.host, settings.port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="local-sagemaker-http", daemon=True)
    thread.start()
    return RunningServer(app, server, thread)


def serve(settings: LocalSageMakerSettings) -> None:
    """Serve in the foreground until interrupted, then stop every worker."""
    app = create_app(settings)
    server = make_server(settings.host, settings.port, app, threaded=True)
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
        server.server_close()
        app.close()
