#!/usr/bin/python3
"""uflow's NFA (lib/src/models/nfa.c) vs anomalib-equivalent Python, on the golden latents, one run.

    /usr/bin/python3 bench/nfa_vs_scipy.py [--fixture tests/golden/expected_random.safetensors]
        [--prefix ""] [--rounds 5] [--iters 20] [--c-iters 500] [--lib build/lib/libuflow.a]

Needs Debian's python3-numpy and python3-scipy (/usr/bin/python3; the first python3 on PATH
may lack them); python3-torch is optional. Nothing is imported from anomalib: the reference
implementations below are written from the U-Flow docs/nfa.md:

  scipy   numpy reflect pad + sliding windows + scipy.stats.binom.logsf, bicubic
          align_corners=True as two dense interpolation matrices (numpy only);
  torch   the same steps with torch ops where anomalib uses them (z**2, F.pad "reflect",
          unfold, F.interpolate bicubic align_corners=True in float64) and scipy's logsf:
          the closest to anomalib's own code path.

Runs build/bench/nfa_bench (built by meson against the public header),
then alternates the implementations for R rounds so that machine noise hits all alike.
Everything runs on one core (threads pinned to 1). Prints the per-round numbers, the accuracy
of each implementation against the fixture's anomalib output, and a final JSON line with the
median milliseconds per image (batch 1) and the speed-up of uflow over each reference.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402
from scipy import stats  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import safetensors_io  # noqa: E402

WINDOW, THR = 7, 0.5


def tau_f32(thr):
    # chi2_1 quantile; anomalib gets it in float32 from torch's Normal.icdf, which is the same
    # float32 as this for thr = 0.5 (0x3EE8ED6D)
    return np.float32(stats.norm.ppf((thr + 1) / 2) ** 2)


def half_width(scale):
    return max(int((WINDOW / 2 ** scale) // 2), 1)


def bicubic_matrix(n_in, n_out):
    """[n_out, n_in] matrix of PyTorch's bicubic, align_corners=True, A = -0.75, clamped taps."""
    A = -0.75
    m = np.zeros((n_out, n_in))
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    for d in range(n_out):
        src = scale * d
        i = math.floor(src)
        t = src - i
        x2 = 1.0 - t
        cc1 = lambda x: ((A + 2) * x - (A + 3)) * x * x + 1  # noqa: E731
        cc2 = lambda x: ((A * x - 5 * A) * x + 8 * A) * x - 4 * A  # noqa: E731
        w = (cc2(t + 1.0), cc1(t), cc1(x2), cc2(x2 + 1.0))
        for j in range(4):
            m[d, min(max(i - 1 + j, 0), n_in - 1)] += w[j]
    return m


class ScipyNFA:
    """numpy + scipy, written from docs/nfa.md"""

    def __init__(self, shapes, H, W):
        self.tau = tau_f32(THR)
        self.my = [bicubic_matrix(h, H) for (_, h, _) in shapes]
        self.mx = [bicubic_matrix(w, W).T.copy() for (_, _, w) in shapes]
        self.log_n = np.float32(np.log10(np.float32(sum(h * w for (_, h, w) in shapes))))

    def __call__(self, zs):
        sfs, log_prob = [], 0.0
        for s, z in enumerate(zs):
            half = half_width(s)
            win = 2 * half + 1
            z2 = z * z  # float32
            z2 = np.pad(z2, ((0, 0), (0, 0), (half, half), (half, half)), mode="reflect")
            wins = sliding_window_view(z2, (win, win), axis=(2, 3))  # B,C,h,w,win,win
            cand = np.sum(wins >= self.tau, axis=(-2, -1))             # per channel counts
            count = np.sum(cand, axis=1, keepdims=True)                 # B,1,h,w int64
            x = count.astype(np.float32) / np.float32(z.shape[1])       # torch true-divide
            sf = stats.binom.logsf(x, win * win, 1 - THR) / np.log(10)
            sfs.append(sf)
            log_prob = log_prob + self.my[s] @ sf @ self.mx[s]          # B,1,H,W
        return sfs, -(np.float64(self.log_n) + log_prob)


class TorchNFA:
    """The same with torch ops where anomalib uses torch (closest to anomalib's own path)."""

    def __init__(self, torch, shapes, H, W):
        self.torch = torch
        self.F = torch.nn.functional
        self.size = (H, W)

    def __call__(self, zs):
        torch, F = self.torch, self.F
        ups, sfs = [], []
        for s, z in enumerate(zs):
            tau = torch.distributions.Normal(0, 1).icdf(torch.tensor((THR + 1) / 2)) ** 2
            half = half_width(s)
            n_chann = z.shape[1]
            z2 = F.pad(z ** 2, tuple(4 * [half]), "reflect").detach().cpu()
            z2u = z2.unfold(-2, 2 * half + 1, 1).unfold(-2, 2 * half + 1, 1).numpy()
            cand_k = np.sum(z2u >= tau.numpy(), axis=(-2, -1))
            count = torch.tensor(np.sum(cand_k, axis=1, keepdims=True))
            x = count / n_chann                                          # float32
            sf = torch.tensor(stats.binom.logsf(x.numpy(), (2 * half + 1) ** 2, 1 - THR)
                              / np.log(10))
            sfs.append(sf.numpy())
            ups.append(F.interpolate(sf, size=self.size, mode="bicubic", align_corners=True))
        log_prob = torch.sum(torch.cat(ups, dim=1), dim=1, keepdim=True)
        log_n = torch.log10(torch.sum(torch.tensor([z.shape[-2] * z.shape[-1] for z in zs])))
        return sfs, (-(log_n + log_prob)).numpy()


def time_py(fn, args, iters):
    fn(args)  # warm-up
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(args)
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def max_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    fin = np.isfinite(ref)
    return float(np.max(np.abs(got[fin] - ref[fin]))) if fin.any() else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default=os.path.join(ROOT, "tests", "golden",
                                                      "expected_random.safetensors"))
    ap.add_argument("--prefix", default="", help='"" or "nfa_synth."')
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20, help="Python calls per round")
    ap.add_argument("--c-iters", type=int, default=500, help="C calls per round")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--no-torch", action="store_true")
    a = ap.parse_args()

    tensors, _ = safetensors_io.load(a.fixture)
    zs, k = [], 0
    while f"{a.prefix}z.{k}" in tensors:
        zs.append(np.ascontiguousarray(tensors[f"{a.prefix}z.{k}"], dtype=np.float32))
        k += 1
    if not zs:
        sys.exit(f"{a.fixture}: no {a.prefix}z.0")
    H, W = 256, 256
    shapes = [z.shape[1:] for z in zs]
    ref_pre = "nfa_synth.lp." if a.prefix == "nfa_synth." else "nfa_lp."
    ref_minus = tensors.get(ref_pre + "minus_log10_nfa")

    # the C side: bench/nfa_bench.c, built by meson against the public header only
    exe = os.path.join(a.build, "bench", "nfa_bench")
    if not os.access(exe, os.X_OK):
        sys.exit(f"{exe} not found: run `ninja -C {a.build}` first")
    cmap = os.path.join(tempfile.gettempdir(), "nfa_bench_minus.f64")

    impls = {"scipy": ScipyNFA(shapes, H, W)}
    if not a.no_torch:
        try:
            import torch
            torch.set_num_threads(1)
            impls["torch"] = TorchNFA(torch, shapes, H, W)
            torch_zs = [torch.from_numpy(z) for z in zs]
        except ImportError:
            print("torch not available: timing the numpy/scipy reference only")

    # accuracy (against the fixture's anomalib output when the fixture has it)
    acc = {}
    if ref_minus is not None:
        for name, fn in impls.items():
            _, m = fn(torch_zs if name == "torch" else zs)
            acc[name] = max_err(m, ref_minus)
    subprocess.run([exe, a.fixture, "--prefix", a.prefix, "--iters", "1", "--out", cmap],
                   check=True, capture_output=True)
    ours = np.fromfile(cmap, dtype="<f8").reshape(len(zs[0]), 1, H, W)
    if ref_minus is not None:
        acc["uflow"] = max_err(ours, ref_minus)
    _, sm = impls["scipy"](zs)
    acc["uflow_vs_scipy"] = max_err(ours, sm)
    print("max |minus_log10_nfa - anomalib fixture|: " +
          ", ".join(f"{k} {v:.3g}" for k, v in acc.items()))

    res = {name: [] for name in impls}
    res["uflow"] = []
    for r in range(a.rounds):
        line = [f"round {r + 1}:"]
        for name, fn in impls.items():
            t = time_py(fn, torch_zs if name == "torch" else zs, a.iters)
            res[name].append(t)
            line.append(f"{name} {t:.2f} ms")
        out = subprocess.run([exe, a.fixture, "--prefix", a.prefix, "--iters", str(a.c_iters)],
                             check=True, capture_output=True, text=True).stdout
        t = json.loads(out.strip().splitlines()[-1])["median_ms"]
        res["uflow"].append(t)
        line.append(f"uflow {t:.4f} ms")
        print("  ".join(line), flush=True)

    med = {k: statistics.median(v) for k, v in res.items()}
    summary = {"fixture": os.path.relpath(a.fixture, ROOT), "prefix": a.prefix,
               "batch": int(zs[0].shape[0]), "latents": [list(map(int, z.shape)) for z in zs],
               "rounds": a.rounds, "uflow_median_ms": round(med["uflow"], 4)}
    for name in impls:
        summary[f"{name}_median_ms"] = round(med[name], 3)
        summary[f"speedup_vs_{name}"] = round(med[name] / med["uflow"], 1)
    summary["max_abs_err_vs_anomalib"] = {k: float(f"{v:.3g}") for k, v in acc.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
