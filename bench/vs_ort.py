#!/usr/bin/python3
"""uflow vs ONNX Runtime (CPU) on the same model file, same input size, same threads.

    /usr/bin/python3 bench/vs_ort.py [--rounds 5] [--configs r18_b1_t2,...] [--mcait]
                                     [--iters N] [--uflow build/cli/uflow] [--no-check] [--json OUT]

For each model the script
  1. exports the model file to ONNX with Debian's torch through tools/uflow_onnx.py (our
     PyTorch reference, tools/uflow_ref.py; one graph per batch size; cached);
  2. installs ORT once with `npm install --ignore-scripts onnxruntime-node@VERSION` into the
     cache (the CPU runtime ships inside the package; its postinstall only fetches GPU parts);
  3. checks ORT's anomaly map against `uflow infer --tensor`'s on the same seeded input
     (max abs <= 1e-4, else it stops: a fast wrong answer is no comparison);
  4. times `node bench/ort_runner.mjs bench` (graph optimisation "all", sequential, intra-op
     threads = T, inter-op 1) and `uflow bench --json` alternately, round by round (the one
     that goes first alternates too), and prints per-round numbers, medians and the ratio
     uflow img/s / ORT img/s.

Configurations (name: model, batch, threads, timed iterations per process):
  r18_b1_t2  resnet18@256 4 steps (tests/golden/resnet18_256_s4.safetensors), batch 1, 2 threads
  r18_b1_t1  the same, batch 1, 1 thread
  r18_b8_t2  the same, batch 8, 2 threads
  wrn50_b1_t2  wide_resnet50_2@256 (`uflow create --backbone wide_resnet50_2 --perturb --seed 1`)
  mcait_b1_t2  mcait@448 (`uflow create --backbone mcait --perturb --seed 1`, 1.6 GB): only
               with --mcait (export ~2 min and ~8 GB RAM once; each round ~1 min)
The default run (the first four, 5 rounds) takes about 3 minutes on the 2-core machine, plus
~1 minute the first time (ORT install, wide_resnet50_2 model and the exports).

Every timing records how many cores other processes used meanwhile (bench/benchlib.py); the
summary says whether the machine was quiet. Cache: $UFLOW_BENCH_CACHE or ~/.cache/uflow-bench.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

ORT_VERSION = "1.31.1"
RUNNER = os.path.join(bl.HERE, "ort_runner.mjs")
EXPORTER = os.path.join(bl.ROOT, "tools", "uflow_onnx.py")
REF = os.path.join(bl.ROOT, "tools", "uflow_ref.py")
TOL = 1e-4
CONFIGS = {   # name: (model key, batch, threads, default iters)
    "r18_b1_t2": ("resnet18", 1, 2, 20),
    "r18_b1_t1": ("resnet18", 1, 1, 15),
    "r18_b8_t2": ("resnet18", 8, 2, 6),
    "wrn50_b1_t2": ("wide_resnet50_2", 1, 2, 8),
    "mcait_b1_t2": ("mcait", 1, 2, 2),
}
DEFAULT = ["r18_b1_t2", "r18_b1_t1", "r18_b8_t2", "wrn50_b1_t2"]


def ensure_ort(version):
    d = os.path.join(bl.cache_dir(), "onnxruntime-node-" + version)
    if os.path.exists(os.path.join(d, "node_modules", "onnxruntime-node", "package.json")):
        return d
    print("# npm install --ignore-scripts onnxruntime-node@%s into %s (once)" % (version, d), flush=True)
    tmp = d + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "package.json"), "w") as f:
        json.dump({"name": "uflow-bench-ort", "private": True}, f)
    bl.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--save-exact",
            "onnxruntime-node@" + version], cwd=tmp)
    os.replace(tmp, d)
    return d


def model_path(uflow, key):
    return bl.R18 if key == "resnet18" else bl.ensure_model(uflow, key)


def file_key(path):
    st = os.stat(path)
    h = hashlib.sha256()
    for p in (path, EXPORTER, REF):   # a changed model or exporter makes a new graph
        s = os.stat(p)
        h.update(("%s %d %d;" % (os.path.abspath(p), s.st_size, s.st_mtime_ns)).encode())
    return h.hexdigest()[:12], st.st_size


def ensure_onnx(model, batch):
    key, _ = file_key(model)
    out = os.path.join(bl.cache_dir(), "%s_b%d_%s.onnx" % (os.path.basename(model).rsplit(".", 1)[0], batch, key))
    if not os.path.exists(out):
        print("# exporting %s (batch %d) to %s" % (model, batch, out), flush=True)
        t0 = time.monotonic()
        info = bl.run_json([sys.executable, EXPORTER, "--threads", "2", "--model", model, "--out", out,
                            "--batch", str(batch)])
        print("#   %.1f s, %.1f MB" % (time.monotonic() - t0, info["bytes"] / 1e6), flush=True)
    return out


def check(uflow, ort_dir, model, onnx, batch, threads):
    """ORT's outputs vs uflow's on one seeded N(0,1) input: {output: (max abs diff, max abs uflow)}."""
    import numpy as np   # only here: the timing loop needs nothing but the standard library
    sys.path.insert(0, os.path.join(bl.ROOT, "tools"))
    import safetensors_io as stio
    tmp = os.path.join(bl.cache_dir(), "check-%d" % os.getpid())
    os.makedirs(tmp, exist_ok=True)
    try:
        H, W = bl.model_input_size(model)
        x = np.random.default_rng(20261204).standard_normal((batch, 3, H, W)).astype(np.float32)
        inp, uo, oo = (os.path.join(tmp, n) for n in ("in.safetensors", "uflow.safetensors", "ort.safetensors"))
        stio.save({"image": x}, {}, inp)
        bl.run([uflow, "infer", "--model", model, "--tensor", inp, "--out", uo, "--threads", str(threads)])
        bl.run(["node", RUNNER, "--ort", ort_dir, "--model", onnx, "run", "--input", inp, "--out", oo,
                "--threads", str(threads)])
        u, _ = stio.load(uo)
        o, _ = stio.load(oo)
        err = {}
        for k in o:
            d = np.abs(o[k].astype(np.float64) - u[k].astype(np.float64))
            err[k] = (float(d.max()), float(np.abs(u[k]).max()))
        return err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def time_config(name, uflow, ort_dir, model, onnx, batch, threads, iters, rounds):
    common = ["--batch", str(batch), "--threads", str(threads), "--iters", str(iters), "--warmup", "2"]
    u_cmd = [uflow, "bench", "--json", "--model", model] + common
    o_cmd = ["node", RUNNER, "--ort", ort_dir, "--model", onnx, "bench"] + common
    rows = []
    for r in range(rounds):
        res = {}
        order = [("ort", o_cmd), ("uflow", u_cmd)] if r % 2 == 0 else [("uflow", u_cmd), ("ort", o_cmd)]
        for impl, cmd in order:
            ml = bl.MachineLoad().start()
            res[impl] = bl.run_json(cmd)
            res[impl + "_others"] = ml.stop()
        rows.append(res)
        u, o = res["uflow"], res["ort"]
        print("  %s round %d: ORT %7.2f img/s (p50 %7.1f ms)   uflow %7.2f img/s (p50 %7.1f ms)   "
              "uflow/ORT %.2fx   others %.2f/%.2f cores" % (
                  name, r + 1, o["images_per_s"], o["p50_ms"], u["images_per_s"], u["p50_ms"],
                  u["images_per_s"] / o["images_per_s"], res["ort_others"], res["uflow_others"]), flush=True)
    med = lambda impl, f: bl.median([x[impl][f] for x in rows])  # noqa: E731
    s = dict(config=name, model=model, batch=batch, threads=threads, iters=iters, rounds=rounds,
             ort_images_per_s=med("ort", "images_per_s"), uflow_images_per_s=med("uflow", "images_per_s"),
             ort_p50_ms=med("ort", "p50_ms"), uflow_p50_ms=med("uflow", "p50_ms"),
             others=[x[k] for x in rows for k in ("ort_others", "uflow_others")])
    s["ratio"] = s["uflow_images_per_s"] / s["ort_images_per_s"]
    s["ratio_p50"] = s["ort_p50_ms"] / s["uflow_p50_ms"]
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=",".join(DEFAULT), help="comma list of " + ", ".join(CONFIGS))
    ap.add_argument("--mcait", action="store_true", help="add mcait_b1_t2 (large and slow)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=0, help="timed iterations per process (0 = per config)")
    ap.add_argument("--uflow", default=bl.default_uflow())
    ap.add_argument("--ort-version", default=ORT_VERSION)
    ap.add_argument("--no-check", action="store_true", help="skip the anomaly-map agreement check")
    ap.add_argument("--json", help="also write the summary as JSON to this file")
    a = ap.parse_args()
    names = [n for n in a.configs.split(",") if n]
    if a.mcait and "mcait_b1_t2" not in names:
        names.append("mcait_b1_t2")
    bad = [n for n in names if n not in CONFIGS]
    if bad or a.rounds < 1 or a.iters < 0:
        ap.error("unknown config %s (known: %s)" % (bad, ", ".join(CONFIGS)) if bad else "rounds >= 1, iters >= 0")
    if not os.access(a.uflow, os.X_OK):
        ap.error("%s is not built (ninja -C build)" % a.uflow)
    t_start = time.monotonic()
    print("# vs_ort: %d cores, load average %s, ORT %s (npm onnxruntime-node, CPU EP)" % (
        os.cpu_count(), bl.loadavg(), a.ort_version), flush=True)
    ort_dir = ensure_ort(a.ort_version)
    summary, checked = [], {}
    for n in names:
        key, batch, threads, iters = CONFIGS[n]
        model = model_path(a.uflow, key)
        onnx = ensure_onnx(model, batch)
        if not a.no_check and onnx not in checked:
            err = check(a.uflow, ort_dir, model, onnx, batch, threads)
            checked[onnx] = err
            amap = err["anomaly_map"][0]
            zs = ", ".join("%s %.1e (max|z| %.1f)" % (k, e, m) for k, (e, m) in sorted(err.items()) if k != "anomaly_map")
            print("# check %s batch %d: anomaly_map max abs diff %.2e (tol %.0e); %s" % (key, batch, amap, TOL, zs),
                  flush=True)
            if not amap <= TOL:
                sys.exit("ORT and uflow disagree on %s: anomaly map differs by %.3e > %.0e" % (model, amap, TOL))
        print("# %s: %s batch %d, %d threads, %d iters per process, %d rounds" % (
            n, key, batch, threads, a.iters or iters, a.rounds), flush=True)
        s = time_config(n, a.uflow, ort_dir, model, onnx, batch, threads, a.iters or iters, a.rounds)
        if onnx in checked:
            s["anomaly_map_max_abs_diff"] = checked[onnx]["anomaly_map"][0]
        summary.append(s)
    print()
    print("| config | ORT img/s (p50 ms) | uflow img/s (p50 ms) | uflow / ORT |")
    print("|---|---|---|---|")
    for s in summary:
        print("| %s | %.2f (%.1f) | %.2f (%.1f) | **%.2fx** |" % (
            s["config"], s["ort_images_per_s"], s["ort_p50_ms"], s["uflow_images_per_s"], s["uflow_p50_ms"], s["ratio"]))
    others = [o for s in summary for o in s["others"]]
    print(bl.load_verdict(others))
    print("total %.0f s" % (time.monotonic() - t_start))
    out = dict(ort_version=a.ort_version, rounds=a.rounds, configs=summary,
               others_max_cores=max(others) if others else None)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
