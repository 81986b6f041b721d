#!/usr/bin/python3
"""Training throughput: libuflow's trainer vs PyTorch (tools/train_ref.py bench) on the same
model, the same CPU threads, alternating rounds; images/s of flow forward + backward + Adam on
cached backbone features (the backbone is frozen in both).

    ninja -C build && /usr/bin/python3 bench/train_vs_pytorch.py [--input-size 128]
        [--flow-steps 4] [--images 64] [--batch 16] [--threads 2] [--rounds 3]

Runs build/bench/train_bench (built by meson against the public header).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--input-size", default="128")
    p.add_argument("--flow-steps", type=int, default=4)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=2)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="uflow_train_bench_")
    model = os.path.join(tmp, "m.safetensors")
    subprocess.run([os.path.join(a.build, "cli", "uflow"), "create", "--out", model, "--backbone",
                    a.backbone, "--input-size", a.input_size, "--flow-steps", str(a.flow_steps),
                    "--seed", "1"], check=True)
    exe = os.path.join(a.build, "bench", "train_bench")   # built by meson (bench/meson.build)
    ours, torch_ = [], []
    for r in range(a.rounds):
        c = run_json([exe, model, str(a.images), str(a.batch), str(a.threads), str(a.iters)])
        t = run_json(["/usr/bin/python3", os.path.join(ROOT, "tools", "train_ref.py"), "bench",
                      "--model", model, "--images", str(a.images), "--batch", str(a.batch),
                      "--threads", str(a.threads), "--iters", str(a.iters)])
        ours.append(c["images_per_s"])
        torch_.append(t["images_per_s"])
        print("round %d: uflow %.2f img/s, pytorch %.2f img/s" % (r + 1, ours[-1], torch_[-1]), flush=True)
    mo, mt = statistics.median(ours), statistics.median(torch_)
    print("%s @%s, %d flow steps, batch %d, %d threads: uflow %.2f img/s, PyTorch %.2f img/s, "
          "ratio %.2fx (medians of %d rounds)" % (a.backbone, a.input_size, a.flow_steps, a.batch,
                                                  a.threads, mo, mt, mo / mt, a.rounds))


if __name__ == "__main__":
    sys.exit(main())
