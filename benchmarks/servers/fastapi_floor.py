"""The floor: a bare FastAPI app that loads the model once at start and predicts on each POST.

Started by the warm-serving benchmark as `uvicorn benchmarks.servers.fastapi_floor:app --workers 2`
with MODEL_PATH pointing at the same joblib file that the local SageMaker endpoint serves.
"""

from __future__ import annotations

import json
import os

import joblib
import numpy as np
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
