#!/usr/bin/env python3
"""The browser page in a real browser: Debian's chromium, headless, driven by npm
playwright-core (tests/ui/browser.mjs), against a real uflowd with an API key.

usage: ui_check.py --uflowd BIN --uflow BIN [--out DIR]

Makes a calibrated 64x64 test model (tests/live_daemon.py), starts uflowd with a key, and
has the browser open /, follow the redirect to /ui, enter the key, score the two golden
images plus an EXIF-rotated copy of one, and compare what the page shows with `uflow
predict`. Screenshots land in DIR (default: the current directory): ui-screenshot.png
(desktop) and ui-screenshot-mobile.png (390 px wide).

Skips (exit 77) when node, chromium or playwright-core is missing, unless UFLOW_UI_REQUIRE=1
(CI sets it: there a missing browser is a failure). playwright-core is looked up in
$UFLOW_PLAYWRIGHT_DIR (a node_modules folder), then build-node/node_modules in the source
tree; scripts/browser-deps.sh installs both it and chromium.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import live_daemon as ld  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def skip(why):
    if os.environ.get("UFLOW_UI_REQUIRE") == "1":
        sys.exit(f"FAIL: {why} (UFLOW_UI_REQUIRE=1; run scripts/browser-deps.sh)")
    print(f"SKIP: {why} (scripts/browser-deps.sh installs the browser test's tools)")
    sys.exit(77)


def playwright_dir():
    cands = [os.environ.get("UFLOW_PLAYWRIGHT_DIR", ""), os.path.join(ld.ROOT, "build-node", "node_modules")]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "playwright-core", "package.json")):
            return c
    return None


def rotated_copy(src, dst, orientation=6):
    """src (a JPEG) with an EXIF APP1 segment saying `orientation` right after its SOI."""
    data = open(src, "rb").read()
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    tiff = (b"MM\x00\x2a" + (8).to_bytes(4, "big") + (1).to_bytes(2, "big") +
            b"\x01\x12" + b"\x00\x03" + (1).to_bytes(4, "big") + orientation.to_bytes(2, "big") + b"\x00\x00" +
            (0).to_bytes(4, "big"))
    body = b"Exif\x00\x00" + tiff
    with open(dst, "wb") as f:
        f.write(data[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + data[2:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uflowd", required=True)
    ap.add_argument("--uflow", required=True)
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    node = shutil.which("node") or shutil.which("nodejs")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not node:
        skip("node is not installed")
    if not os.access(chromium, os.X_OK):
        skip(f"{chromium} is not installed")
    pw = playwright_dir()
    if not pw:
        skip("playwright-core is not installed")
    with tempfile.TemporaryDirectory(prefix="uflow_ui_") as tmp:
        model = os.path.join(tmp, "demo.safetensors")
        expect = ld.calibrated_model(a.uflow, model)
        rotated = os.path.join(tmp, "defect_rotated.jpg")
        rotated_copy(ld.DEFECT, rotated)
        labels = {os.path.basename(k): v["label"] for k, v in expect.items()}
        print("expected (uflow predict):", json.dumps({os.path.basename(k): v for k, v in expect.items()}))
        if sorted(labels.values()) != ["anomalous", "normal"]:
            sys.exit(f"FAIL: the test model should label one image of each kind: {labels}")
        with ld.Daemon(a.uflowd, ["--model", "demo=" + model, "--workers", "1"], tmp, key="ui-test-key-7") as d:
            cfg = {
                "url": d.url, "key": d.key, "model": "demo", "chromium": chromium, "playwright": pw,
                "userDataDir": os.path.join(tmp, "chromium-profile"),
                "files": [ld.DEFECT, ld.TEXTURE], "rotated": rotated,
                "expect": {os.path.basename(k): {"label": v["label"], "score": v["score"]} for k, v in expect.items()},
                "screenshot": os.path.abspath(os.path.join(a.out, "ui-screenshot.png")),
                "mobileScreenshot": os.path.abspath(os.path.join(a.out, "ui-screenshot-mobile.png")),
            }
            p = subprocess.run([node, os.path.join(HERE, "browser.mjs"), json.dumps(cfg)], timeout=240)
            if p.returncode != 0:
                d.fail(f"the browser test failed (exit {p.returncode})")
    print("ui_check: ok; screenshots in", os.path.abspath(a.out))


main()
