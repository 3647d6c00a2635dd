"""The floor: a bare FastAPI app that loads the model once at start and predicts on each POST.

Started by the warm-serving benchmark as `python -m benchmarks.servers.fastapi_floor PORT 2` (two uvicorn
workers) with MODEL_PATH pointing at the same joblib file that the local SageMaker endpoint serves.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys

import joblib
import numpy as np
import uvicorn
from fastapi import FastAPI, Request, Response

model = joblib.load(os.environ["MODEL_PATH"])
app = FastAPI()


@app.post("/invocations")
async def invocations(request: Request) -> Response:
    rows = json.loads(await request.body())
    predictions = model.predict(np.asarray(rows, dtype=float))
    return Response(json.dumps(predictions.tolist()), media_type="application/json")


@app.get("/ping")
async def ping() -> Response:
    return Response(status_code=200)


def serve(port: int, workers: int) -> None:
    """What `uvicorn --workers N` does (N processes sharing one listening socket), minus its 40 ms stall.

    uvicorn's multi-worker mode hands the workers a socket whose protocol number is 0, so asyncio skips
    TCP_NODELAY on accepted connections; its two writes per response (head, body) then wait on the
    client's delayed ACK. A socket opened with IPPROTO_TCP keeps the floor a floor.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(2048)
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
            os._exit(0)
        children.append(pid)

    def stop(_signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        os.waitpid(child, 0)


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
