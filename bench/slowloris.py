#!/usr/bin/env python3
"""Slowloris against uflowd (issue 13 item 2), loopback only, bounded.

Starts UFLOWD with --max-connections 16 (plus EXTRA flags), opens --slow connections from
127.0.0.2 that trickle one header byte every --trickle seconds and never finish their head,
then, after --warmup seconds, sends --good plain GET /healthz requests from 127.0.0.1 one
after another and reports how many got an answer within --window seconds in all, and how
many of the slow connections the daemon had closed by then.

    bench/slowloris.py build/server/uflowd [--extra "--header-timeout 10"]
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def start(uflowd, extra):
    tmp = tempfile.mkdtemp(prefix="slowloris-")
    portfile = os.path.join(tmp, "port")
    model = os.path.join(HERE, "..", "tests", "golden", "resnet18_256_s4.safetensors")
    cmd = [uflowd, "--model", "g=" + model, "--workers", "1", "--listen", "127.0.0.1:0", "--port-file", portfile,
           "--max-connections", "16"] + extra.split()
    log = open(os.path.join(tmp, "log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=log)
    for _ in range(200):
        if os.path.exists(portfile) and open(portfile).read().strip():
            return p, int(open(portfile).read())
        time.sleep(0.05)
    p.kill()
    sys.exit("uflowd did not start: " + open(os.path.join(tmp, "log")).read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("uflowd")
    ap.add_argument("--extra", default="")
    ap.add_argument("--slow", type=int, default=40)
    ap.add_argument("--good", type=int, default=4)
    ap.add_argument("--trickle", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--window", type=float, default=10.0)
    a = ap.parse_args()
    p, port = start(a.uflowd, a.extra)
    try:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4000
        slow = []
        for _ in range(a.slow):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            slow.append([s, 0, True])
        t0 = time.time()
        next_tick = t0

        def tick():
            nonlocal next_tick
            if time.time() < next_tick:
                return
            next_tick += a.trickle
            for c in slow:
                if not c[2]:
                    continue
                try:
                    c[0].send(head[c[1]:c[1] + 1])
                    c[1] += 1
                    c[0].recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                    c[2] = False  # an answer (408/503) or EOF: the daemon let go of it
                except BlockingIOError:
                    pass
                except OSError:
                    c[2] = False

        while time.time() - t0 < a.warmup:
            tick()
            time.sleep(0.05)
        served, t1 = 0, time.time()
        for _ in range(a.good):
            left = a.window - (time.time() - t1)
            if left <= 0:
                break
            g = socket.socket()
            g.settimeout(0.2)
            try:
                g.connect(("127.0.0.1", port))
                g.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                data, end = b"", time.time() + left
                while time.time() < end and b"\r\n\r\n" not in data:
                    tick()
                    try:
                        d = g.recv(4096)
                        if not d:
                            break
                        data += d
                    except socket.timeout:
                        pass
                served += data.startswith(b"HTTP/1.1 200")
            except OSError:
                pass
            g.close()
        elapsed = time.time() - t1
        tick()
        closed = sum(1 for c in slow if not c[2])
        print(f"{served} of {a.good} good requests answered 200 in {elapsed:.1f} s (window {a.window:g} s); "
              f"{closed} of {a.slow} slow connections closed by the daemon after {time.time() - t0:.1f} s")
        for c in slow:
            c[0].close()
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


if __name__ == "__main__":
    main()
