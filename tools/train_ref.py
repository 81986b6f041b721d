#!/usr/bin/python3
"""PyTorch reference of U-Flow training (docs/training.md), for the C trainer's tests and
benchmark.  Run with Debian's /usr/bin/python3 (torch 1.13).

The flow and feature LayerNorms come from tools/uflow_ref.py (written from docs/uflow-math.md); here
they are made trainable and optimised exactly as anomalib does (docs/uflow-math.md "Training"): Adam(lr, L2 weight
decay), LinearLR(1.0 -> end factor over total_iters) stepped once per epoch.  Losses:
    paper     mean_b(0.5*|z_b|^2 - ljd_b)           (U-Flow paper code; the default)
    anomalib  sum_b 0.5*|z_b|^2 - mean_b(ljd_b)     (anomalib's UFlowLoss)

Subcommands
    make-fixture --model M --out F [--batch 3] [--seed 1] [--epochs 3] [--total-iters 4]
        Random normalised inputs; for both losses: the loss and every trainable tensor's
        gradient at the start, then the parameters after `epochs` epochs of one full batch
        each.  Every tensor is stored as a fixed sample of up to 64 elements plus its L2 norm
        (the full gradients would not be small enough to commit).
    bench --model M [--batch 8] [--images 32] [--iters 3] [--threads 2]
        Training throughput (forward + backward + Adam, cached features), images/s.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as stio  # noqa: E402
import uflow_ref  # noqa: E402

SAMPLE = 64


def trainable(ref):
    """(anomalib name, tensor) of every trainable tensor, in the C trainer's order."""
    out = []
    for k, (w, b) in enumerate(ref.ln):
        out.append(("feature_extractor.feature_normalizations.%d.weight" % k, w))
        out.append(("feature_extractor.feature_normalizations.%d.bias" % k, b))
    for n in sorted(ref.blocks):
        p = ref.blocks[n]
        for name in ("global_scale", "global_offset", "subnet.0.weight", "subnet.0.bias",
                     "subnet.2.weight", "subnet.2.bias"):
            out.append(("flow.module_list.%d.%s" % (n, name), p[name]))
    return out


def load(model):
    ref, cfg, meta = uflow_ref.load_model(model)
    params = trainable(ref)
    for _, t in params:
        t.requires_grad_(True)
    return ref, params


def loss_of(ref, feats, kind):
    z, ljd = ref.flow(feats)
    lpz = torch.stack([0.5 * torch.sum(zk ** 2, dim=(1, 2, 3)) for zk in z], dim=0).sum(0)  # [B]
    if kind == "paper":
        return torch.mean(lpz - ljd)
    return torch.mean(lpz.sum() - ljd)  # UFlowLoss: the z term summed over the batch


def features(ref, x):
    with torch.no_grad():
        raw, feats = ref.features(x)
    if ref.backbone is None:
        return lambda: feats
    # the LayerNorm affine is trainable: recompute it from x-hat in the graph
    xh = [torch.nn.functional.layer_norm(r, tuple(r.shape[1:]), None, None, 1e-5) for r in raw]
    return lambda: [h * w + b for h, (w, b) in zip(xh, ref.ln)]


def sample_idx(n):
    if n <= SAMPLE:
        return np.arange(n, dtype=np.int64)
    return (np.arange(SAMPLE, dtype=np.int64) * 2654435761) % n


def cmd_make_fixture(a):
    torch.set_num_threads(2)
    rng = np.random.default_rng(a.seed)
    ref0, _ = load(a.model)
    H, W = ref0.cfg["H"], ref0.cfg["W"]
    x = torch.from_numpy(rng.standard_normal((a.batch, 3, H, W)).astype(np.float32))
    out = {"input": x.numpy()}
    meta = {"model_data_sha256": stio_sha(a.model), "batch": str(a.batch), "epochs": str(a.epochs),
            "lr": str(a.lr), "weight_decay": str(a.weight_decay), "end_factor": str(a.end_factor),
            "total_iters": str(a.total_iters)}
    for kind in ("paper", "anomalib"):
        ref, params = load(a.model)
        feats = features(ref, x)
        loss = loss_of(ref, feats(), kind)
        loss.backward()
        for name, t in params:
            idx = sample_idx(t.numel())
            out["idx." + name] = idx
            g = t.grad.detach().reshape(-1).double().numpy()
            out["grad.%s.%s" % (kind, name)] = g[idx].astype(np.float32)
            out["gradnorm.%s.%s" % (kind, name)] = np.array([np.linalg.norm(g)], np.float64)
        opt = torch.optim.Adam([t for _, t in params], lr=a.lr, weight_decay=a.weight_decay)
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=a.end_factor,
                                                  total_iters=a.total_iters)
        losses = []
        for _ in range(a.epochs):  # one batch per epoch
            opt.zero_grad()
            loss = loss_of(ref, feats(), kind)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        out["losses.%s" % kind] = np.array(losses, np.float64)
        for name, t in params:
            v = t.detach().reshape(-1).double().numpy()
            out["after.%s.%s" % (kind, name)] = v[sample_idx(t.numel())].astype(np.float32)
            out["afternorm.%s.%s" % (kind, name)] = np.array([np.linalg.norm(v)], np.float64)
        print("%s: losses %s" % (kind, losses))
    stio.save(out, meta, a.out)
    print("wrote", a.out)


def stio_sha(path):
    """SHA-256 of the data section (the tensors, not the header's config)."""
    import hashlib
    with open(path, "rb") as f:
        b = f.read()
    n = int.from_bytes(b[:8], "little")
    return hashlib.sha256(b[8 + n:]).hexdigest()


def cmd_bench(a):
    torch.set_num_threads(a.threads)
    ref, params = load(a.model)
    H, W = ref.cfg["H"], ref.cfg["W"]
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((a.images, 3, H, W)).astype(np.float32))
    batches = [features(ref, x[i:i + a.batch]) for i in range(0, a.images, a.batch)]
    opt = torch.optim.Adam([t for _, t in params], lr=1e-3, weight_decay=1e-5)

    def epoch():
        for f in batches:
            opt.zero_grad()
            loss = loss_of(ref, f(), "paper")
            loss.backward()
            opt.step()

    epoch()  # warm-up
    best = None
    for _ in range(a.iters):
        t0 = time.perf_counter()
        epoch()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    print(json.dumps({"images_per_s": a.images / best, "epoch_s": best, "images": a.images,
                      "batch": a.batch, "threads": a.threads}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("make-fixture")
    f.add_argument("--model", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--batch", type=int, default=3)
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--epochs", type=int, default=3)
    f.add_argument("--lr", type=float, default=1e-3)
    f.add_argument("--weight-decay", type=float, default=1e-5)
    f.add_argument("--end-factor", type=float, default=0.4)
    f.add_argument("--total-iters", type=int, default=4)
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--images", type=int, default=32)
    b.add_argument("--iters", type=int, default=3)
    b.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    {"make-fixture": cmd_make_fixture, "bench": cmd_bench}[a.cmd](a)


if __name__ == "__main__":
    main()
