"""Baseline for bench_runtime.py: a minimal FastAPI app serving predict_proba (run with one uvicorn worker)."""

import os

import joblib
import numpy as np
from fastapi import FastAPI, Request

app = FastAPI()
model = joblib.load(os.environ["BENCH_MODEL"])


@app.post("/predict")
async def predict(request: Request) -> dict:
    """Answer ``{"data": [[...]]}`` with predicted probabilities."""
    payload = await request.json()
    return {"predictions": model.predict_proba(np.asarray(payload["data"], dtype=np.float64)).tolist()}
