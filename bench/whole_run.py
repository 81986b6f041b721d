#!/usr/bin/python3
"""Whole commands, not only the steady state: `uflow infer` as users run it vs PyTorch.

    /usr/bin/python3 bench/whole_run.py [--model M] [--threads 2] [--rounds 5] [--batch 16]
                                        [--singles 3] [--uflow build/cli/uflow] [--json OUT]

Each round (the uflow and PyTorch halves swap order every round) measures
  infer_B     `uflow infer --tensor` on one [B,3,H,W] file (B = 16) as one process: wall time
              from exec to exit, including load, context, run and writing every output;
              img/s = B / wall; also that process's CPU time (user / system) and peak RSS;
  infer_1     the same with a [1,3,H,W] file, `--singles` processes: img/s = 1 / median wall;
  first       build/bench/load_bench: uf_model_load, uf_ctx_init, the first and a second
              uf_ctx_run, timed inside one process (model load to first inference);
  bench       `uflow bench --batch 1` (the steady state, for the streaming ratio);
  torch       bench/torch_bench.py --batch 1 (tools/uflow_ref.py in torch 1.13, in-process,
              steady state), with its model-load and first-forward times.
and prints the medians and the ratios
  infer_B / torch        the issue's target: >= 1.5
  infer_1 / torch        one image per process
  marginal / bench       (B - 1) / (wall_B - wall_1) img/s, the per-image rate once started,
                         vs the steady state (the issue's streaming target: >= 0.9)
A default run (resnet18@256, 5 rounds) takes about 1.5 minutes. Every timing records how many
cores other processes used meanwhile; the summary says whether the machine was quiet.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def timed_process(cmd):
    """(wall s, user s, sys s, max RSS MiB) of one child, from its own rusage."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit("command failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), err[-2000:]))
    return wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss / 1024.0


def make_inputs(model, batch, tmp):
    import numpy as np
    sys.path.insert(0, os.path.join(bl.ROOT, "tools"))
    import safetensors_io as stio
    H, W = bl.model_input_size(model)
    x = np.random.default_rng(7).standard_normal((batch, 3, H, W)).astype(np.float32)
    big, one = os.path.join(tmp, "in_b%d.safetensors" % batch), os.path.join(tmp, "in_b1.safetensors")
    stio.save({"image": x}, {}, big)
    stio.save({"image": x[:1].copy()}, {}, one)
    return big, one


def uflow_half(a, big, one, out):
    r = {}
    ml = bl.MachineLoad().start()
    inf = [a.uflow, "infer", "--model", a.model, "--threads", str(a.threads), "--out", out, "--tensor"]
    r["infer_B"] = timed_process(inf + [big])
    walls = sorted(timed_process(inf + [one])[0] for _ in range(a.singles))
    r["infer_1_wall"] = walls[len(walls) // 2]
    r["first"] = bl.run_json([a.load_bench, a.model, "--batch", "1", "--threads", str(a.threads)])
    r["bench"] = bl.run_json([a.uflow, "bench", "--json", "--model", a.model, "--batch", "1",
                              "--threads", str(a.threads), "--iters", "16", "--warmup", "2"])
    r["others_uflow"] = ml.stop()
    return r


def torch_half(a):
    ml = bl.MachineLoad().start()
    t = bl.run_json([sys.executable, os.path.join(bl.HERE, "torch_bench.py"), "--model", a.model,
                     "--batch", "1", "--threads", str(a.threads), "--iters", "16", "--warmup", "2"])
    return {"torch": t, "others_torch": ml.stop()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=bl.R18)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--singles", type=int, default=3, help="1-image processes per round")
    ap.add_argument("--uflow", default=bl.default_uflow())
    ap.add_argument("--load-bench", default=os.path.join(bl.ROOT, "build", "bench", "load_bench"))
    ap.add_argument("--json", help="also write the summary as JSON to this file")
    a = ap.parse_args()
    if a.rounds < 1 or a.batch < 2 or a.singles < 1 or a.threads < 1:
        ap.error("rounds, singles, threads >= 1 and batch >= 2")
    for exe in (a.uflow, a.load_bench):
        if not os.access(exe, os.X_OK):
            ap.error("%s is not built (ninja -C build)" % exe)
    t_start = time.monotonic()
    B = a.batch
    print("# whole_run: %s, %d threads, batch %d file, %d cores, load average %s" % (
        os.path.basename(a.model), a.threads, B, os.cpu_count(), bl.loadavg()), flush=True)
    tmp = tempfile.mkdtemp(prefix="uflow_whole_")
    rows = []
    try:
        big, one = make_inputs(a.model, B, tmp)
        out = os.path.join(tmp, "out.safetensors")
        for k in range(a.rounds):
            r = {}
            if k % 2 == 0:
                r.update(uflow_half(a, big, one, out))
                r.update(torch_half(a))
            else:
                r.update(torch_half(a))
                r.update(uflow_half(a, big, one, out))
            rows.append(r)
            w, u, s, rss = r["infer_B"]
            f, t = r["first"], r["torch"]
            print("round %d: infer %d imgs %.2f s = %.2f img/s (cpu user %.2f s, sys %.2f s, %.0f MiB)   "
                  "1 img/process %.3f s   load->1st result %.0f ms (load %.0f, ctx %.1f, 1st run %.0f, "
                  "2nd %.0f)   bench %.2f img/s   torch b1 %.2f img/s (load %.0f ms, 1st %.0f ms)   "
                  "others %.2f/%.2f cores" % (
                      k + 1, B, w, B / w, u, s, rss, r["infer_1_wall"], f["load_to_first_result_ms"],
                      f["load_ms"], f["ctx_init_ms"], f["first_run_ms"], f["second_run_ms"],
                      r["bench"]["images_per_s"], t["images_per_s"], t["load_ms"], t["first_ms"],
                      r["others_uflow"], r["others_torch"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = lambda f: bl.median([f(r) for r in rows])  # noqa: E731
    wB, w1 = med(lambda r: r["infer_B"][0]), med(lambda r: r["infer_1_wall"])
    s = {
        "model": a.model, "threads": a.threads, "batch": B, "rounds": a.rounds,
        "infer_B_wall_s": wB, "infer_B_images_per_s": B / wB,
        "infer_B_cpu_user_s": med(lambda r: r["infer_B"][1]), "infer_B_cpu_sys_s": med(lambda r: r["infer_B"][2]),
        "infer_B_max_rss_mib": med(lambda r: r["infer_B"][3]),
        "infer_1_wall_s": w1, "infer_1_images_per_s": 1 / w1,
        "marginal_images_per_s": (B - 1) / (wB - w1) if wB > w1 else float("nan"),
        "load_ms": med(lambda r: r["first"]["load_ms"]), "ctx_init_ms": med(lambda r: r["first"]["ctx_init_ms"]),
        "first_run_ms": med(lambda r: r["first"]["first_run_ms"]),
        "second_run_ms": med(lambda r: r["first"]["second_run_ms"]),
        "load_to_first_result_ms": med(lambda r: r["first"]["load_to_first_result_ms"]),
        "bench_images_per_s": med(lambda r: r["bench"]["images_per_s"]),
        "torch_images_per_s": med(lambda r: r["torch"]["images_per_s"]),
        "torch_load_ms": med(lambda r: r["torch"]["load_ms"]), "torch_first_ms": med(lambda r: r["torch"]["first_ms"]),
    }
    s["ratio_infer_B_vs_torch"] = s["infer_B_images_per_s"] / s["torch_images_per_s"]
    s["ratio_infer_1_vs_torch"] = s["infer_1_images_per_s"] / s["torch_images_per_s"]
    s["ratio_marginal_vs_bench"] = s["marginal_images_per_s"] / s["bench_images_per_s"]
    s["ratio_infer_B_vs_bench"] = s["infer_B_images_per_s"] / s["bench_images_per_s"]
    others = [r[k] for r in rows for k in ("others_uflow", "others_torch")]
    s["others_max_cores"] = max(others)
    print()
    print("| measure | value | ratio |")
    print("|---|---|---|")
    print("| `uflow infer` %d images, one process | %.2f img/s (%.2f s; cpu user %.2f s, sys %.2f s; %.0f MiB) | "
          "**%.2fx** PyTorch b1 |" % (B, s["infer_B_images_per_s"], wB, s["infer_B_cpu_user_s"], s["infer_B_cpu_sys_s"],
                                     s["infer_B_max_rss_mib"], s["ratio_infer_B_vs_torch"]))
    print("| `uflow infer` 1 image per process | %.2f img/s (%.3f s) | %.2fx PyTorch b1 |" % (
        s["infer_1_images_per_s"], w1, s["ratio_infer_1_vs_torch"]))
    print("| per extra image in the %d-image process | %.2f img/s | %.2fx `uflow bench` b1 |" % (
        B, s["marginal_images_per_s"], s["ratio_marginal_vs_bench"]))
    print("| `uflow bench` b1 (steady state) | %.2f img/s | |" % s["bench_images_per_s"])
    print("| PyTorch reference b1, in-process | %.2f img/s | |" % s["torch_images_per_s"])
    print("| uflow model load to first result | %.0f ms (load %.0f + ctx %.1f + first run %.0f; steady run %.0f) | |" % (
        s["load_to_first_result_ms"], s["load_ms"], s["ctx_init_ms"], s["first_run_ms"], s["second_run_ms"]))
    print("| PyTorch model load, first forward | %.0f ms, %.0f ms | |" % (s["torch_load_ms"], s["torch_first_ms"]))
    print(bl.load_verdict(others))
    print("total %.0f s" % (time.monotonic() - t_start))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(s, f, indent=1)
    print(json.dumps(s))


if __name__ == "__main__":
    main()
