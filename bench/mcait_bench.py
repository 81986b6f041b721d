#!/usr/bin/python3
"""uflow vs PyTorch on an mcait model (CaiT-M48 @448 + CaiT-S24 @224, 422 M parameters),
side by side on the same cores, plus GFLOP/s and the peak RSS of one uflow worker.

    /usr/bin/python3 bench/mcait_bench.py [--model /tmp/mcait_bench.safetensors] [--threads 2]
                                          [--rounds 3] [--iters 3] [--uflow build/cli/uflow]

* The model is made with `uflow create --backbone mcait --input-size 448 --perturb --seed 1`
  when the file does not exist (1.6 GB, a few seconds).
* Each round runs `uflow bench --json` and bench/torch_bench.py (our PyTorch reference of the
  same file, tools/uflow_ref.py; Debian's python3-torch) one after the other, so machine noise
  hits both alike; the medians over rounds are reported.
* FLOPs are counted analytically (2 per multiply-add, direct convolution for the flow; the
  CaiT attention includes q k^T, attn v and both talking-heads mixings; LayerNorm, softmax,
  GELU and other elementwise work are not counted). GFLOP/s = GFLOP per image x images/s.
* Peak RSS: `/usr/bin/time -v uflow bench --iters 1 --warmup 0` (load + one context + one
  run; the mapped weights count once they are touched).
Prints one JSON line at the end.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def cait_flops(D, H, N, depth):
    lin = 2 * N * D * (3 * D + D + 4 * D + 4 * D)       # qkv, proj, fc1, fc2
    attn = 2 * 2 * H * N * N * (D // H)                # q k^T and attn v
    mix = 2 * 2 * H * H * N * N                        # proj_l and proj_w over (i, j)
    return depth * (lin + attn + mix) + 2 * N * D * 3 * 16 * 16   # + patch embedding


def flow_flops():
    """AllInOneBlock subnets, direct convolution (k = 3, 1, 3, 1 per stage)."""
    total = 0
    for C, hw in ((384, 14 * 14), (816, 28 * 28)):
        C2 = C // 2
        C1 = C - C2
        for k in (3, 1, 3, 1):
            total += 2 * hw * k * k * (C1 * C1 + C1 * 2 * C2)
    return total


def mcait_gflop():
    return (cait_flops(768, 16, 784, 41) + cait_flops(384, 8, 196, 21) + flow_flops()) / 1e9


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def peak_rss_kib(uflow, model, threads):
    r = subprocess.run(["/usr/bin/time", "-v", uflow, "bench", "--model", model, "--threads",
                        str(threads), "--iters", "1", "--warmup", "0"],
                       capture_output=True, text=True, check=True)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/mcait_bench.safetensors")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--uflow", default=os.path.join(HERE, "..", "build", "cli", "uflow"))
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("creating %s ..." % a.model, flush=True)
        subprocess.run([a.uflow, "create", "--backbone", "mcait", "--input-size", "448",
                        "--perturb", "--seed", "1", "--out", a.model], check=True)
    gf = mcait_gflop()
    print("mcait @448: %.1f GFLOP per image (counted as in the docstring)" % gf, flush=True)
    common = ["--model", a.model, "--batch", "1", "--threads", str(a.threads), "--iters", str(a.iters),
              "--warmup", "1"]
    ours, theirs = [], []
    for r in range(a.rounds):
        u = run_json([a.uflow, "bench", "--json"] + common)
        t = run_json([sys.executable, os.path.join(HERE, "torch_bench.py")] + common)
        ours.append(u)
        theirs.append(t)
        print("round %d: uflow %.3f img/s (p50 %.0f ms, %.0f GFLOP/s)   pytorch %.3f img/s "
              "(p50 %.0f ms, %.0f GFLOP/s)" % (r + 1, u["images_per_s"], u["p50_ms"],
                                                gf * u["images_per_s"], t["images_per_s"],
                                                t["p50_ms"], gf * t["images_per_s"]), flush=True)
    uo = statistics.median(x["images_per_s"] for x in ours)
    to = statistics.median(x["images_per_s"] for x in theirs)
    rss = peak_rss_kib(a.uflow, a.model, a.threads)
    print(json.dumps({
        "model": a.model, "threads": a.threads, "rounds": a.rounds, "iters": a.iters,
        "gflop_per_image": round(gf, 1),
        "uflow_images_per_s": round(uo, 4), "pytorch_images_per_s": round(to, 4),
        "uflow_p50_ms": round(statistics.median(x["p50_ms"] for x in ours), 1),
        "pytorch_p50_ms": round(statistics.median(x["p50_ms"] for x in theirs), 1),
        "uflow_gflop_per_s": round(gf * uo, 1), "pytorch_gflop_per_s": round(gf * to, 1),
        "ratio": round(uo / to, 2),
        "uflow_peak_rss_mib": round(rss / 1024, 1) if rss else None,
        "uflow_scratch_mib": round(ours[-1]["scratch_bytes"] / 1048576, 1),
    }))


if __name__ == "__main__":
    main()
