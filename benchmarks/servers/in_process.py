"""A WSGI app served from a thread of this process by one of the candidate servers that can do that.

The edge and the REST front serve apps that share the local cloud's process (moto's backends, the stack,
the functions host), so only a server that runs the app in the calling process can serve them. granian's
WSGI interface cannot (worker processes only, on a Python with the GIL); its embedded server can, for
ASGI, so it serves the app through a2wsgi.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from modeldrop_local.http_server import DEFAULT_THREADS, WSGIServer

from benchmarks.common import free_port, wait_for_port

IN_PROCESS_SERVERS = ("waitress", "granian-embedded", "uvicorn", "cheroot")
HOST = "127.0.0.1"


def coroutine_receive_asgi(wsgi_app: Any) -> Callable[..., Any]:
    """The WSGI app as ASGI (a2wsgi), for a server whose `receive` is not a coroutine function.

    a2wsgi hands `receive()` to asyncio.run_coroutine_threadsafe, which takes only a coroutine; granian's
    receive returns a future of its own."""
    from a2wsgi import WSGIMiddleware

    wsgi_as_asgi = WSGIMiddleware(wsgi_app, workers=DEFAULT_THREADS)

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        async def coroutine_receive() -> Any:
            return await receive()

        await wsgi_as_asgi(scope, coroutine_receive, send)

    return asgi_app


@contextmanager
def serving(server: str, app: Any) -> Iterator[int]:
    """Serve `app` on a free loopback port from a daemon thread; yields the port, stops on exit."""
    port = free_port()
    stop: Callable[[], None]
    if server == "waitress":
        waitress = WSGIServer(HOST, port, app, name="bench")
        waitress.start()
        stop = waitress.stop
    elif server == "cheroot":
        from cheroot.wsgi import Server as CherootServer

        cheroot = CherootServer((HOST, port), app, numthreads=DEFAULT_THREADS)
        cheroot.prepare()
        threading.Thread(target=cheroot.serve, daemon=True).start()
        stop = cheroot.stop
    elif server == "uvicorn":
        import uvicorn
        from a2wsgi import WSGIMiddleware

        config = uvicorn.Config(
            WSGIMiddleware(app, workers=DEFAULT_THREADS),
            host=HOST,
            port=port,
            http="httptools",
            log_level="warning",
            access_log=False,
        )
        uvicorn_server = uvicorn.Server(config)
        thread = threading.Thread(target=uvicorn_server.run, daemon=True)
        thread.start()

        def stop() -> None:
            uvicorn_server.should_exit = True
            thread.join(10)

    elif server == "granian-embedded":
        from granian.constants import Interfaces
        from granian.server.embed import Server as EmbeddedServer

        granian = EmbeddedServer(
            coroutine_receive_asgi(app), address=HOST, port=port, interface=Interfaces.ASGINL
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(granian.serve(),), daemon=True)
        thread.start()

        def stop() -> None:
            loop.call_soon_threadsafe(granian.stop)
            thread.join(10)

    else:
        raise ValueError(f"unknown in-process server {server!r}: one of {', '.join(IN_PROCESS_SERVERS)}")
    try:
        wait_for_port(port, timeout_s=30)
        yield port
    finally:
        stop()
