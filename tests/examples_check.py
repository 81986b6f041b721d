#!/usr/bin/env python3
"""examples/ against a live uflowd with an API key: the Python client and the curl script
must print the label and score `uflow predict` gives, save a valid heatmap PNG, and exit
0 (normal) / 1 (anomalous) / 2 (error: a wrong key, a missing file).

usage: examples_check.py --uflowd BIN --uflow BIN
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_daemon as ld  # noqa: E402

PY_CLIENT = os.path.join(ld.ROOT, "examples", "python", "uflow_client.py")
CURL_SCRIPT = os.path.join(ld.ROOT, "examples", "curl", "score.sh")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(cmd, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("UFLOW_")}
    e.update(env or {})
    p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=120)
    return p.returncode, p.stdout, p.stderr


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def fields(line):
    """'PATH LABEL k=v ...' -> (label, {k: v})."""
    parts = line.split()
    return parts[1], dict(p.split("=", 1) for p in parts[2:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uflowd", required=True)
    ap.add_argument("--uflow", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="uflow_examples_") as tmp:
        model = os.path.join(tmp, "line3.safetensors")
        expect = ld.calibrated_model(a.uflow, model)
        anomalous = next(k for k, v in expect.items() if v["label"] == "anomalous")
        normal = next(k for k, v in expect.items() if v["label"] == "normal")
        key = "examples-key-42"
        key_file = os.path.join(tmp, "key.txt")
        with open(key_file, "w") as f:
            f.write(key + "\n")
        with ld.Daemon(a.uflowd, ["--model", "line3=" + model, "--workers", "1"], tmp, key=key) as d:
            env = {"UFLOW_URL": d.url, "UFLOW_API_KEY": key}
            py = sys.executable

            # Python: both images, key from the environment, model picked as the only one
            heat_dir = os.path.join(tmp, "heat")
            rc, out, err = run([py, PY_CLIENT, "--heatmap-dir", heat_dir, anomalous, normal], env)
            check(rc == 1, f"python: exit 1 when an image is anomalous (got {rc}; {err.strip()})")
            lines = out.splitlines()
            check(len(lines) == 2, f"python: one line per image ({len(lines)})")
            for path, line in zip((anomalous, normal), lines):
                label, kv = fields(line)
                want = expect[path]
                check(label == want["label"], f"python {os.path.basename(path)}: label {label} ({want['label']})")
                check(abs(float(kv.get("score", "nan")) - want["score"]) < 1e-6,
                      f"python {os.path.basename(path)}: score {kv.get('score')} ({want['score']})")
                check(abs(float(kv.get("normalized", "nan")) - want["normalized_score"]) < 1e-4,
                      f"python {os.path.basename(path)}: normalized {kv.get('normalized')}")
                check(png_size(kv.get("heatmap", "")) == (64, 64), f"python: heatmap {kv.get('heatmap')} is a 64x64 PNG")
            # key file, explicit model, a normal image -> 0; with --mask the NFA area is shown
            rc, out, err = run([py, PY_CLIENT, "--url", d.url, "--model", "line3", "--api-key-file", key_file,
                                "--mask", normal])
            check(rc == 0 and "nfa_area=" in out, f"python: --api-key-file, --mask, a normal image: exit {rc}: {out.strip()}")
            rc, out, err = run([py, PY_CLIENT, normal], {"UFLOW_URL": d.url, "UFLOW_API_KEY": "wrong"})
            check(rc == 2 and "API key" in err, f"python: a wrong key exits 2 and says so ({rc}: {err.strip()})")
            rc, out, err = run([py, PY_CLIENT, os.path.join(tmp, "missing.jpg")], env)
            check(rc == 2, f"python: a missing file exits 2 ({rc})")
            rc, out, err = run([py, PY_CLIENT, "--url", "http://127.0.0.1:1", normal], env)
            check(rc == 2 and "cannot reach" in err, f"python: no server exits 2 ({rc}: {err.strip()})")

            # curl
            env["UFLOW_MODEL"] = "line3"
            heat = os.path.join(tmp, "curl-heat.png")
            rc, out, err = run(["sh", CURL_SCRIPT, anomalous, heat], env)
            check(rc == 1, f"curl: exit 1 for the anomalous image (got {rc}; {err.strip()})")
            if out.strip():
                label, kv = fields(out.strip())
                check(label == "anomalous", f"curl: label {label}")
                check(abs(float(kv.get("score", "nan")) - expect[anomalous]["score"]) < 1e-6, f"curl: score {kv.get('score')}")
                check("normalized" in kv, "curl: the normalised score is printed")
            check(os.path.exists(heat) and png_size(heat) == (64, 64), "curl: the heatmap is a 64x64 PNG")
            rc, out, err = run(["sh", CURL_SCRIPT, normal], env)
            check(rc == 0 and out.split()[1:2] == ["normal"], f"curl: exit 0, normal ({rc}: {out.strip()})")
            rc, out, err = run(["sh", CURL_SCRIPT, normal], {**env, "UFLOW_API_KEY": "wrong"})
            check(rc == 2 and "401" in err, f"curl: a wrong key exits 2 with the 401 ({rc}: {err.strip()})")
            rc, out, err = run(["sh", CURL_SCRIPT, normal], {**env, "UFLOW_MODEL": "nope"})
            check(rc == 2 and "404" in err, f"curl: an unknown model exits 2 with the 404 ({rc}: {err.strip()})")
    print(f"examples_check: {len(failures)} failed" if failures else "examples_check: all passed")
    return 1 if failures else 0


sys.exit(main())
