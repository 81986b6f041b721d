#!/usr/bin/python3
"""uflow vs PyTorch on the same model, same input size, same threads, in one run.

    /usr/bin/python3 bench/vs_pytorch.py --model M.safetensors [--batch 1] [--threads 2]
                                         [--rounds 5] [--iters 20] [--uflow build/cli/uflow]

Alternates `uflow bench --json` and bench/torch_bench.py (our PyTorch reference of the same
model, tools/uflow_ref.py) for R rounds so that machine noise hits both alike, then prints
the median images/s of each and the ratio uflow / PyTorch. Needs Debian's python3-torch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--uflow", default=os.path.join(HERE, "..", "build", "cli", "uflow"))
    a = ap.parse_args()
    common = ["--model", a.model, "--batch", str(a.batch), "--threads", str(a.threads),
              "--iters", str(a.iters)]
    ours, theirs = [], []
    for r in range(a.rounds):
        u = run([a.uflow, "bench", "--json"] + common)
        t = run([sys.executable, os.path.join(HERE, "torch_bench.py")] + common)
        ours.append(u)
        theirs.append(t)
        print(f"round {r + 1}: uflow {u['images_per_s']:.2f} img/s (p50 {u['p50_ms']:.1f} ms)   "
              f"pytorch {t['images_per_s']:.2f} img/s (p50 {t['p50_ms']:.1f} ms)", flush=True)
    uo = statistics.median(x["images_per_s"] for x in ours)
    to = statistics.median(x["images_per_s"] for x in theirs)
    up = statistics.median(x["p50_ms"] for x in ours)
    tp = statistics.median(x["p50_ms"] for x in theirs)
    print(json.dumps({"model": a.model, "batch": a.batch, "threads": a.threads, "rounds": a.rounds,
                      "uflow_images_per_s": round(uo, 3), "pytorch_images_per_s": round(to, 3),
                      "uflow_p50_ms": round(up, 2), "pytorch_p50_ms": round(tp, 2),
                      "ratio": round(uo / to, 3)}))


if __name__ == "__main__":
    main()
