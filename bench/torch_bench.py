#!/usr/bin/python3
"""Time the PyTorch reference forward (tools/uflow_ref.py) of a U-Flow model file.

    /usr/bin/python3 bench/torch_bench.py --model M.safetensors [--batch 1] [--iters 20]
                                          [--threads 2] [--warmup 3]

Runs torch.no_grad + eval (the reference is inference-only), torch.set_num_threads(T),
a seeded N(0,1) input of the model's input size, `warmup` untimed iterations, then
`iters` timed ones (full forward: backbone, LayerNorm, flow, anomaly map, score).
Prints one JSON line; besides the timed iterations it has load_ms (reading the model file
into the reference) and first_ms (the first warm-up forward, null with --warmup 0).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import uflow_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="PyTorch reference benchmark for uflow")
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    if a.iters < 1 or a.batch < 1 or a.threads < 1 or a.warmup < 0:
        ap.error("iters, batch and threads must be >= 1, warmup >= 0")

    torch.set_num_threads(a.threads)
    t_load = time.perf_counter()
    model, _, _ = uflow_ref.load_model(a.model)
    load_ms = (time.perf_counter() - t_load) * 1e3
    H, W = model.cfg["H"], model.cfg["W"]
    img = torch.from_numpy(np.random.default_rng(0).standard_normal(
        (a.batch, 3, H, W)).astype(np.float32))

    first_ms = None
    with torch.no_grad():
        for _ in range(a.warmup):
            t0 = time.perf_counter()
            model.forward(img)
            if first_ms is None:
                first_ms = (time.perf_counter() - t0) * 1e3
        times = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            model.forward(img)
            times.append((time.perf_counter() - t0) * 1e3)

    t = np.asarray(times)
    mean = float(t.mean())
    print(json.dumps({
        "impl": "pytorch",
        "model": a.model,
        "batch": a.batch,
        "threads": a.threads,
        "iters": a.iters,
        "mean_ms": round(mean, 3),
        "p50_ms": round(float(np.percentile(t, 50)), 3),
        "p90_ms": round(float(np.percentile(t, 90)), 3),
        "images_per_s": round(a.batch * 1e3 / mean, 3),
        "load_ms": round(load_ms, 3),
        "first_ms": round(first_ms, 3) if first_ms is not None else None,
    }))


if __name__ == "__main__":
    main()
