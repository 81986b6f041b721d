#!/usr/bin/env python3
"""Peak memory of uflowd for one KServe v2 request with a ~16 MiB FP32 JSON body (issue 13
item 6), loopback only. Starts UFLOWD with the golden resnet18@256 model and one worker,
reads VmHWM/VmRSS from /proc before and after the request, prints the differences.

    bench/v2_memory.py build/server/uflowd [--batch 7]
"""
import argparse
import http.client
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def status(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS"):
            out[k] = int(v.split()[0]) / 1024.0
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("uflowd")
    ap.add_argument("--batch", type=int, default=7)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="v2mem-")
    portfile = os.path.join(tmp, "port")
    model = os.path.join(HERE, "..", "tests", "golden", "resnet18_256_s4.safetensors")
    p = subprocess.Popen([a.uflowd, "--model", "g=" + model, "--workers", "1", "--listen", "127.0.0.1:0",
                          "--port-file", portfile, "--max-body", "64M"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            if os.path.exists(portfile) and open(portfile).read().strip():
                break
            time.sleep(0.05)
        port = int(open(portfile).read())
        n = a.batch * 3 * 256 * 256
        rnd = random.Random(1)
        nums = ",".join("%.9f" % rnd.random() for _ in range(n))
        body = ('{"inputs":[{"name":"input","datatype":"FP32","shape":[%d,3,256,256],"data":[%s]}],'
                '"outputs":[{"name":"pred_score"}]}' % (a.batch, nums)).encode()
        # warm-up: one small request, so the worker's buffers exist before the measurement
        w = ('{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3,256,256],"data":[%s]}]}'
             % ",".join(["0.5"] * (3 * 256 * 256))).encode()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v2/models/g/infer", w, {"Content-Type": "application/json"})
        c.getresponse().read()
        c.close()
        time.sleep(0.5)
        s0 = status(p.pid)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v2/models/g/infer", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        time.sleep(0.5)
        s1 = status(p.pid)
        print(f"body {len(body) / 2**20:.1f} MiB ({n} numbers): HTTP {r.status}; peak RSS {s0['VmHWM']:.0f} -> "
              f"{s1['VmHWM']:.0f} MiB (+{s1['VmHWM'] - s0['VmHWM']:.0f}), RSS after {s1['VmRSS']:.0f} MiB "
              f"(+{s1['VmRSS'] - s0['VmRSS']:.0f})")
    finally:
        p.terminate()
        p.wait(30)


if __name__ == "__main__":
    main()
