"""The HTTP server of the edge and the REST front: the local SageMaker's keep-alive HTTP/1.1 server.

werkzeug's development server (used here before) closed the connection after every response, so every
call between the cloud's parts (REST front → Api function → GetItem and InvokeEndpoint on the edge) paid
a TCP handshake and a new thread. The local SageMaker's server keeps a connection on its thread while the
client keeps it open, sends each answer in one write with TCP_NODELAY, and refuses ambiguous framing
(both Content-Length and Transfer-Encoding, a negative Content-Length) with 400: one server for the
three ports.
"""

from __future__ import annotations

import logging
from typing import Any

from moto.core.request import (
    PRESERVED_HEADER_NAMES_ENVIRON_KEY,
    environ_key_for_header,
    should_preserve_original_header_name,
)

from modeldrop_local.sagemaker.server import ConnectionHandler, LeanWSGIServer

# One line per request at INFO (`local up --verbose`); `local up` leaves it at WARNING.
access_log = logging.getLogger("modeldrop_local.access")


class LoggedConnectionHandler(ConnectionHandler):
    def _run_app(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        status, headers, payload = super()._run_app(environ)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                '%s "%s %s %s" %s %d',
                self.client_address_text,
                environ["REQUEST_METHOD"],
                environ["REQUEST_URI"],
                environ["SERVER_PROTOCOL"],
                status.split(" ", 1)[0],
                len(payload),
            )
        return status, headers, payload


class MotoConnectionHandler(LoggedConnectionHandler):
    """Like moto's own request handler: S3 metadata headers keep their underscores (x-amz-meta-a_b).

    WSGI folds `-` and `_` together, so the generic server drops underscored names; moto reads the
    original spelling of the ones it preserves from one environ key.
    """

    def _environ(
        self, method: str, target: str, version: str, headers: list[tuple[str, str]]
    ) -> dict[str, Any]:
        environ = super()._environ(method, target, version, headers)
        dashed = {environ_key_for_header(name) for name, _ in headers if "_" not in name}
        names: dict[str, str] = {}
        values: dict[str, list[str]] = {}
        for name, value in headers:
            if not should_preserve_original_header_name(name):
                continue
            key = environ_key_for_header(name)
            if key in dashed:  # never let an underscored header stand in for a dashed one
                continue
            names.setdefault(key, name)
            values.setdefault(key, []).append(value)
        for key, key_values in values.items():
            environ[key] = ",".join(key_values)
        environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names
        return environ


def make_server(host: str, port: int, app: Any, moto_headers: bool = False) -> LeanWSGIServer:
    """A threaded keep-alive server for app on host:port; moto_headers for a port that moto answers."""
    return LeanWSGIServer(
        host, port, app, handler=MotoConnectionHandler if moto_headers else LoggedConnectionHandler
    )
