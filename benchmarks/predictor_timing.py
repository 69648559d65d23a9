"""Timing shared by the prediction-throughput benchmarks (imported by them; prints nothing)."""

from __future__ import annotations

import time

import numpy as np
import torch


def predictor_rate(predictor, images: np.ndarray, batch: int) -> float:
    """Stamps per second of ``predictor.predict`` on ``images`` in batches of ``batch``, after
    one warm-up batch (a CUDA predictor is synchronised before the clock stops)."""
    predictor.predict({"image": images[:batch]})
    if predictor.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for first in range(0, len(images), batch):
        predictor.predict({"image": images[first : first + batch]})
    if predictor.device == "cuda":
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start)
