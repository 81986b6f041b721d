"""Helpers for the tests that drive a real uflowd from Python (standard library only):
a small calibrated test model, a daemon on 127.0.0.1 with an ephemeral port, plain HTTP.

Used by tests/examples_check.py, tests/monitoring_check.py and tests/ui/ui_check.py.
Every wait is bounded; the daemon is stopped (SIGTERM, then SIGKILL) when the `with` ends.
"""
import json
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_INPUTS = os.path.join(ROOT, "tests", "golden", "inputs")
DEFECT = os.path.join(GOLDEN_INPUTS, "defect_640x480.jpg")
TEXTURE = os.path.join(GOLDEN_INPUTS, "texture_300x280.png")


def run(cmd, **kw):
    """Run a command; its stdout, or exit the test with its output on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout


def set_config(path, updates):
    """Rewrite a safetensors file with keys added to its __metadata__ "config" JSON (the
    header grows; tensor data is copied unchanged, the header padded to 8 bytes)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.setdefault("__metadata__", {})
    cfg = json.loads(meta.get("config", "{}"))
    cfg.update(updates)
    meta["config"] = json.dumps(cfg)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data)
    os.replace(tmp, path)


def predict_cli(uflow, model, images):
    """`uflow predict` answers, one dict per image, in order."""
    out = run([uflow, "predict", "--model", model, *images])
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def calibrated_model(uflow, path, images=(DEFECT, TEXTURE)):
    """A seeded 64x64 resnet18 model with anomalib post-processing statistics whose image
    threshold lies halfway between the highest and lowest raw score of `images`, so those
    get different labels far from the boundary. Returns {image: `uflow predict` answer}."""
    run([uflow, "create", "--out", path, "--input-size", "64", "--flow-steps", "2", "--seed", "7"])
    scores = [a["score"] for a in predict_cli(uflow, path, list(images))]
    lo, hi = min(scores), max(scores)
    if not hi > lo:
        sys.exit(f"FAIL: the test images score alike ({scores}); pick another seed")
    span = hi - lo
    set_config(path, {"image_threshold": (lo + hi) / 2, "pixel_threshold": (lo + hi) / 2,
                      "pred_scores_min": lo - span, "pred_scores_max": hi + span,
                      "anomaly_maps_min": 0.0, "anomaly_maps_max": 1.0})
    return dict(zip(images, predict_cli(uflow, path, list(images))))


def http(url, data=None, headers=None, method=None, timeout=30):
    """(status, headers, body bytes); HTTP errors are answers too, not exceptions."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Daemon:
    """uflowd on 127.0.0.1:0 with `args` (a list); .url, .port, .key; a context manager."""

    def __init__(self, uflowd, args, workdir, key=None, name="uflowd"):
        self.key = key
        self.workdir = workdir
        self.log_path = os.path.join(workdir, name + ".log")
        port_file = os.path.join(workdir, name + ".port")
        cmd = [uflowd, *args, "--listen", "127.0.0.1:0", "--port-file", port_file]
        if key:
            key_file = os.path.join(workdir, name + ".keys")
            with open(key_file, "w") as f:
                f.write("# test key\n" + key + "\n")
            cmd += ["--api-key-file", key_file]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = 0
        deadline = time.monotonic() + 60
        while not self.port:
            if self.proc.poll() is not None:
                self.fail(f"uflowd exited {self.proc.returncode} during start-up")
            if time.monotonic() > deadline:
                self.fail("uflowd wrote no port file in 60 s")
            try:
                with open(port_file) as f:
                    self.port = int(f.read().strip() or 0)
            except (OSError, ValueError):
                time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"
        while self.get("/readyz")[0] != 200:
            if time.monotonic() > deadline:
                self.fail("uflowd was not ready in 60 s")
            time.sleep(0.05)

    def headers(self, extra=None):
        h = {"Authorization": "Bearer " + self.key} if self.key else {}
        h.update(extra or {})
        return h

    def get(self, path, headers=None):
        try:
            return http(self.url + path, headers=self.headers(headers), timeout=10)
        except OSError:
            return 0, {}, b""

    def post(self, path, data, ctype):
        return http(self.url + path, data=data, headers=self.headers({"Content-Type": ctype}), method="POST")

    def fail(self, msg):
        self.stop()
        with open(self.log_path, errors="replace") as f:
            sys.exit(f"FAIL: {msg}\n--- uflowd log ---\n{f.read()[-4000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
