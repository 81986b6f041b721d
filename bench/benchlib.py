"""Helpers shared by the comparison scripts under bench/ (vs_ort.py, whole_run.py, http_vs_lib.py).

Not a benchmark itself. Standard library only, so any python3 can import it; the scripts that
need torch run under Debian's /usr/bin/python3.
"""
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
R18 = os.path.join(ROOT, "tests", "golden", "resnet18_256_s4.safetensors")
BUSY_CORES = 0.15   # other processes using more than this many cores during a timing: "busy"


def cache_dir():
    """Where generated models, ONNX exports and the npm install live between runs (they are
    large and slow to make): $UFLOW_BENCH_CACHE, else ~/.cache/uflow-bench."""
    d = os.environ.get("UFLOW_BENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "uflow-bench")
    os.makedirs(d, exist_ok=True)
    return d


def default_uflow():
    return os.path.join(ROOT, "build", "cli", "uflow")


def run(cmd, **kw):
    """Run cmd; on failure show its stderr and stop (a benchmark with a failed side is void)."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.stderr.write("command failed (%d): %s\n%s%s" % (p.returncode, " ".join(cmd), p.stdout[-2000:],
                                                           p.stderr[-4000:]))
        raise SystemExit(1)
    return p.stdout


def run_json(cmd, **kw):
    """The last stdout line of cmd parsed as JSON (the convention of every timer here)."""
    return json.loads(run(cmd, **kw).strip().splitlines()[-1])


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def model_config(path):
    """__metadata__["config"] of a model file, from its safetensors header alone."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        hdr = json.loads(f.read(n))
    return json.loads(hdr.get("__metadata__", {}).get("config", "{}"))


def model_input_size(path):
    s = model_config(path).get("input_size", 256)
    return (s, s) if isinstance(s, int) else (int(s[0]), int(s[1]))


def ensure_model(uflow, backbone, seed=1):
    """A perturbed seeded-random model made by `uflow create` (cached): wide_resnet50_2 @256 or
    mcait @448, 4 flow steps. resnet18 uses the committed fixture instead."""
    size = 448 if backbone == "mcait" else 256
    path = os.path.join(cache_dir(), "%s_%d_seed%d.safetensors" % (backbone, size, seed))
    if not os.path.exists(path):
        print("# making %s with uflow create (once; cached)" % path, flush=True)
        tmp = path + ".tmp"
        run([uflow, "create", "--backbone", backbone, "--input-size", str(size), "--perturb",
             "--seed", str(seed), "--out", tmp])
        os.replace(tmp, path)
    return path


class MachineLoad:
    """CPU time used by processes other than this one and its waited-for children over a span,
    in cores (from /proc/stat busy time, steal included, minus our own rusage). It tells a
    timing taken on a quiet machine from one taken while others build."""

    def __init__(self, pids=()):
        self.hz = os.sysconf("SC_CLK_TCK")
        self.pids = list(pids)   # children alive across the span (a server): theirs is ours too
        self.t0 = self.b0 = self.o0 = None

    @staticmethod
    def _busy_ticks():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal (guest is already inside user)
        return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)

    def _ours(self):
        t = os.times()
        s = t.user + t.system + t.children_user + t.children_system
        for pid in self.pids:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    v = f.read().rsplit(")", 1)[1].split()
                s += (int(v[11]) + int(v[12])) / self.hz   # utime, stime
            except (OSError, IndexError, ValueError):
                pass
        return s

    def start(self):
        self.t0, self.b0, self.o0 = time.monotonic(), self._busy_ticks(), self._ours()
        return self

    def stop(self):
        """Cores used by others since start() (>= 0)."""
        wall = time.monotonic() - self.t0
        busy = (self._busy_ticks() - self.b0) / self.hz
        return max(0.0, (busy - (self._ours() - self.o0)) / wall) if wall > 0 else 0.0


def load_verdict(others):
    """One line on how quiet the machine was, from per-round MachineLoad numbers."""
    if not others:
        return "machine load: not measured"
    hi = max(others)
    state = "quiet" if hi <= BUSY_CORES else "BUSY: not a quiet-machine measurement"
    return "machine load: other processes used %.2f-%.2f cores (median %.2f) during the timings (%s)" % (
        min(others), hi, median(others), state)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
