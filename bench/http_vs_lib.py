#!/usr/bin/env python3
"""The HTTP path against the library alone: what uflowd adds to one predict call, and how it scales.

    python3 bench/http_vs_lib.py [--rounds 3] [--duration 5] [--build build] [--json OUT]

Starts two uflowd on 127.0.0.1 (ephemeral ports) with the fixture model
(tests/golden/resnet18_256_s4.safetensors): A = 1 worker x 1 thread, B = 2 workers x 1 thread.
The body is tests/golden/inputs/defect_640x480.jpg, heatmap on (mask and overlay off). Each round
(order rotates) measures
  lib    build/bench/pipeline_bench, 1 thread: the same work in-process (JPEG decode + resize,
         uf_ctx_run, heatmap PNG), p50 of the whole and of each stage;
  A c=1  wrk, 1 connection, `--duration` s: p50 latency and requests/s;
  B c=2  wrk, 2 connections: requests/s;
then prints the medians and the issue's two ratios:
  A c=1 p50 / lib p50           (target <= 1.10; also shown against uf_ctx_run alone, the
                                 definition the issue's first measurement used)
  B c=2 req/s / A c=1 req/s     (target >= 1.9)
and the server's own timing_ms (decode, inference, encode, total) over 20 sequential requests,
so the time outside the handler (HTTP, JSON, base64, loopback) is visible.
Needs wrk (Debian package `wrk`). A default run takes about 45 s. Every timing records how many
cores other processes used meanwhile; the summary says whether the machine was quiet.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

IMAGE = os.path.join(bl.ROOT, "tests", "golden", "inputs", "defect_640x480.jpg")

WRK_LUA = """
local f = assert(io.open("%s", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read +
              summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %%d %%.3f %%.3f %%.3f %%d\\n", summary.requests, summary.duration / 1e6,
           latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, bad))
end
"""


class Server:
    def __init__(self, uflowd, model, workers, tmp, tag):
        self.port_file = os.path.join(tmp, "port." + tag)
        self.log = open(os.path.join(tmp, "uflowd.%s.log" % tag), "w")
        self.p = subprocess.Popen([uflowd, "--model", "fixture=" + model, "--listen", "127.0.0.1:0",
                                   "--port-file", self.port_file, "--workers", str(workers),
                                   "--threads-per-worker", "1", "--queue-size", "64",
                                   "--log-format", "json"], stdout=subprocess.DEVNULL, stderr=self.log)
        self.uflowd, self.workers = uflowd, workers

    def wait_ready(self):
        for _ in range(600):
            if self.p.poll() is not None:
                sys.exit("uflowd exited with %d (log %s)" % (self.p.returncode, self.log.name))
            if os.path.exists(self.port_file) and os.path.getsize(self.port_file) > 0:
                port = int(open(self.port_file).read().strip())
                if subprocess.run([self.uflowd, "--healthcheck", "http://127.0.0.1:%d/readyz" % port],
                                  capture_output=True).returncode == 0:
                    self.url = "http://127.0.0.1:%d/v1/models/fixture/predict?heatmap=true" % port
                    return
            time.sleep(0.1)
        sys.exit("uflowd did not become ready (log %s)" % self.log.name)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def wrk(url, conns, duration, lua):
    out = bl.run(["wrk", "-t", str(conns), "-c", str(conns), "-d", "%ds" % duration, "--latency", "-s", lua, url])
    line = [x for x in out.splitlines() if x.startswith("RESULT ")]
    if not line:
        sys.exit("wrk printed no result:\n" + out)
    n, secs, p50, p99, bad = line[-1].split()[1:]
    if int(bad):
        sys.exit("wrk: %s failed requests against %s" % (bad, url))
    return {"requests": int(n), "req_per_s": int(n) / float(secs), "p50_ms": float(p50), "p99_ms": float(p99)}


def server_timings(url, n=20):
    """Medians of the handler's own timing_ms over n sequential requests."""
    body = open(IMAGE, "rb").read()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    rows = []
    for _ in range(n):
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "image/jpeg"})
        with opener.open(req) as r:
            rows.append(json.load(r)["timing_ms"])
    return {k: bl.median([r[k] for r in rows]) for k in rows[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk point")
    ap.add_argument("--build", default=os.path.join(bl.ROOT, "build"))
    ap.add_argument("--model", default=bl.R18)
    ap.add_argument("--json", help="also write the summary as JSON to this file")
    a = ap.parse_args()
    if a.rounds < 1 or a.duration < 1:
        ap.error("rounds and duration >= 1")
    uflowd = os.path.join(a.build, "server", "uflowd")
    pipe = os.path.join(a.build, "bench", "pipeline_bench")
    for exe in (uflowd, pipe):
        if not os.access(exe, os.X_OK):
            ap.error("%s is not built (ninja -C %s)" % (exe, a.build))
    if subprocess.run(["sh", "-c", "command -v wrk"], capture_output=True).returncode != 0:
        sys.exit("wrk is not installed: sudo apt-get install wrk   (Debian/Ubuntu package 'wrk')")
    t_start = time.monotonic()
    print("# http_vs_lib: %d cores, load average %s, body %s (%d bytes), heatmap on, %d s per wrk point" % (
        os.cpu_count(), bl.loadavg(), os.path.basename(IMAGE), os.path.getsize(IMAGE), a.duration), flush=True)
    tmp = tempfile.mkdtemp(prefix="uflow_http_")
    lua = os.path.join(tmp, "post.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA % IMAGE)
    servers = [Server(uflowd, a.model, 1, tmp, "a"), Server(uflowd, a.model, 2, tmp, "b")]
    rows = []
    try:
        for s in servers:
            s.wait_ready()
        A, B = servers
        pids = [s.p.pid for s in servers]
        steps = {
            "lib": lambda: bl.run_json([pipe, a.model, IMAGE, "--threads", "1", "--iters", "30", "--warmup", "3"]),
            "a_c1": lambda: wrk(A.url, 1, a.duration, lua),
            "b_c2": lambda: wrk(B.url, 2, a.duration, lua),
        }
        names = list(steps)
        wrk(A.url, 1, 1, lua)   # warm both servers (first decode, first run)
        wrk(B.url, 2, 1, lua)
        for k in range(a.rounds):
            r = {}
            for name in names[k % 3:] + names[:k % 3]:
                ml = bl.MachineLoad(pids).start()
                r[name] = steps[name]()
                r[name + "_others"] = ml.stop()
            rows.append(r)
            lib, x, y = r["lib"], r["a_c1"], r["b_c2"]
            print("round %d: lib p50 %.1f ms (decode %.1f, infer %.1f, heatmap %.1f)   A c=1 p50 %.1f ms, %.1f req/s"
                  "   B c=2 %.1f req/s (p50 %.1f ms)   others %.2f/%.2f/%.2f cores" % (
                      k + 1, lib["total_p50_ms"], lib["decode_p50_ms"], lib["infer_p50_ms"], lib["heatmap_p50_ms"],
                      x["p50_ms"], x["req_per_s"], y["req_per_s"], y["p50_ms"], r["lib_others"], r["a_c1_others"],
                      r["b_c2_others"]), flush=True)
        timing = server_timings(A.url)
    finally:
        for s in servers:
            s.stop()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    med = lambda f: bl.median([f(r) for r in rows])  # noqa: E731
    s = {
        "rounds": a.rounds, "duration_s": a.duration,
        "lib_total_p50_ms": med(lambda r: r["lib"]["total_p50_ms"]),
        "lib_decode_p50_ms": med(lambda r: r["lib"]["decode_p50_ms"]),
        "lib_infer_p50_ms": med(lambda r: r["lib"]["infer_p50_ms"]),
        "lib_heatmap_p50_ms": med(lambda r: r["lib"]["heatmap_p50_ms"]),
        "heatmap_bytes": rows[-1]["lib"]["heatmap_bytes"],
        "a_c1_p50_ms": med(lambda r: r["a_c1"]["p50_ms"]), "a_c1_req_per_s": med(lambda r: r["a_c1"]["req_per_s"]),
        "b_c2_req_per_s": med(lambda r: r["b_c2"]["req_per_s"]), "b_c2_p50_ms": med(lambda r: r["b_c2"]["p50_ms"]),
        "server_timing_ms": timing,
    }
    s["ratio_http_vs_lib"] = s["a_c1_p50_ms"] / s["lib_total_p50_ms"]
    s["ratio_http_vs_infer"] = s["a_c1_p50_ms"] / s["lib_infer_p50_ms"]
    s["ratio_c2_vs_c1"] = s["b_c2_req_per_s"] / s["a_c1_req_per_s"]
    others = [r[k] for r in rows for k in r if k.endswith("_others")]
    s["others_max_cores"] = max(others)
    print()
    print("| measure | value |")
    print("|---|---|")
    print("| library, same work (decode + infer + heatmap PNG), 1 thread | p50 %.1f ms (decode %.1f, infer %.1f, "
          "heatmap %.1f; PNG %d bytes) |" % (s["lib_total_p50_ms"], s["lib_decode_p50_ms"], s["lib_infer_p50_ms"],
                                             s["lib_heatmap_p50_ms"], s["heatmap_bytes"]))
    print("| uflowd 1 worker x 1 thread, concurrency 1 | p50 %.1f ms, %.2f req/s |" % (s["a_c1_p50_ms"], s["a_c1_req_per_s"]))
    print("| uflowd 2 workers x 1 thread, concurrency 2 | %.2f req/s (p50 %.1f ms) |" % (s["b_c2_req_per_s"], s["b_c2_p50_ms"]))
    print("| HTTP p50 / library p50 | **%.2fx** (vs uf_ctx_run alone: %.2fx) |" % (
        s["ratio_http_vs_lib"], s["ratio_http_vs_infer"]))
    print("| concurrency 2 (2 workers) / concurrency 1 throughput | **%.2fx** |" % s["ratio_c2_vs_c1"])
    print("| uflowd timing_ms (median of 20, 1 worker) | %s |" % ", ".join("%s %.1f" % kv for kv in timing.items()))
    print(bl.load_verdict(others))
    print("total %.0f s" % (time.monotonic() - t_start))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(s, f, indent=1)
    print(json.dumps(s))


if __name__ == "__main__":
    main()
