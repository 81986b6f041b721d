#!/usr/bin/env python3
"""Score images with uflowd and save their heatmaps — Python standard library only.

    uflow_client.py [--url URL] [--model NAME] [--api-key-file FILE] [--heatmap-dir DIR]
                    [--mask] [--json] IMAGE...

One line per image: `IMAGE LABEL score=S normalized=N [heatmap=PATH]`. LABEL is `anomalous`,
`normal`, or `unknown` (the model has no calibrated threshold: add --mask to let the NFA
test decide). Exit status, for scripts on the line: 0 every image normal (or unknown),
1 at least one anomalous, 2 an error (unreachable server, wrong key, unreadable image, ...).

Settings: --url or UFLOW_URL (default http://localhost:8080); --model or UFLOW_MODEL (default:
the server's only model); the API key from --api-key-file (its first line) or UFLOW_API_KEY —
never on the command line, where `ps` would show it. A busy server (503 + Retry-After) is
retried up to 3 times.

As a library: `predict(url, model, image_bytes, filename, key=None, mask=False)` returns the
answer as a dict (see api/openapi.yaml, PredictResponse).
"""
import argparse
import base64
import json
import mimetypes
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


class UflowError(Exception):
    pass


def _request(url, data=None, headers=None, timeout=60, retries=3):
    """The JSON answer of one request; UflowError with uflowd's message on an error answer."""
    for attempt in range(retries + 1):
        req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            body = e.read()
            retry_after = e.headers.get("Retry-After")
            if e.code == 503 and retry_after and attempt < retries:
                time.sleep(min(float(retry_after), 10))
                continue
            try:
                err = json.loads(body)["error"]
                msg = f"{err['message']} ({err['code']}, HTTP {e.code})"
            except (ValueError, KeyError, TypeError):
                msg = f"HTTP {e.code}: {body[:200]!r}"
            if e.code == 401:
                msg += "; set UFLOW_API_KEY or --api-key-file"
            raise UflowError(msg) from None
        except urllib.error.URLError as e:
            raise UflowError(f"cannot reach {url}: {e.reason}") from None
        except ValueError as e:
            raise UflowError(f"the answer is not JSON: {e}") from None
    raise UflowError("server busy")  # not reached


def _auth(key):
    return {"Authorization": "Bearer " + key} if key else {}


def models(url, key=None):
    """Names of the served models."""
    return [m["name"] for m in _request(url.rstrip("/") + "/v1/models", headers=_auth(key))["models"]]


def predict(url, model, image, filename="image", key=None, mask=False, heatmap=True, timeout=60):
    """POST one image (bytes) as multipart/form-data; the answer as a dict."""
    boundary = uuid.uuid4().hex
    ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    parts = [(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{safe_name}"\r\n'
              f"Content-Type: {ctype}\r\n\r\n").encode() + image + b"\r\n"]
    for name, value in (("heatmap", heatmap), ("mask", mask)):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f'{"true" if value else "false"}\r\n'.encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", **_auth(key)}
    path = f"/v1/models/{urllib.parse.quote(model, safe='')}/predict"
    return _request(url.rstrip("/") + path, data=body, headers=headers, timeout=timeout)


def _key(args):
    if args.api_key_file:
        with open(args.api_key_file) as f:
            lines = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        if not lines:
            raise UflowError(f"{args.api_key_file} holds no key")
        return lines[0]
    return os.environ.get("UFLOW_API_KEY") or None


def main():
    ap = argparse.ArgumentParser(description="Score images with uflowd.")
    ap.add_argument("images", nargs="+", metavar="IMAGE")
    ap.add_argument("--url", default=os.environ.get("UFLOW_URL", "http://localhost:8080"))
    ap.add_argument("--model", default=os.environ.get("UFLOW_MODEL"))
    ap.add_argument("--api-key-file", help="file whose first line is the key (else $UFLOW_API_KEY)")
    ap.add_argument("--heatmap-dir", help="save each heatmap as DIR/NAME.heatmap.png")
    ap.add_argument("--mask", action="store_true", help="also run the NFA defect test")
    ap.add_argument("--json", action="store_true", help="print each answer as JSON (images left out)")
    args = ap.parse_args()
    status = 0
    try:
        key = _key(args)
        model = args.model
        if not model:
            names = models(args.url, key)
            if len(names) != 1:
                raise UflowError(f"the server has {len(names)} models ({', '.join(names)}): pick one with --model")
            model = names[0]
        if args.heatmap_dir:
            os.makedirs(args.heatmap_dir, exist_ok=True)
        for path in args.images:
            try:
                with open(path, "rb") as f:
                    image = f.read()
                a = predict(args.url, model, image, os.path.basename(path), key, args.mask, bool(args.heatmap_dir))
            except (OSError, UflowError) as e:
                print(f"{path}: error: {e}", file=sys.stderr)
                status = 2
                continue
            label = a.get("label") or "unknown"
            line = f"{path} {label} score={a['score']:.6f}"
            if a.get("normalized_score") is not None:
                line += f" normalized={a['normalized_score']:.4f}"
            if a.get("mask"):
                line += f" nfa_area={100 * a['mask']['anomalous_fraction']:.2f}%"
            if args.heatmap_dir and a.get("heatmap"):
                out = os.path.join(args.heatmap_dir, os.path.splitext(os.path.basename(path))[0] + ".heatmap.png")
                with open(out, "wb") as f:
                    f.write(base64.b64decode(a["heatmap"]["png_base64"]))
                line += f" heatmap={out}"
            if args.json:
                for k in ("heatmap", "overlay", "mask"):
                    if isinstance(a.get(k), dict):
                        a[k].pop("png_base64", None)
                line = json.dumps({"path": path, **a})
            print(line, flush=True)
            if label == "anomalous" and status == 0:
                status = 1
    except UflowError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
