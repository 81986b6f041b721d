#!/usr/bin/env python3
"""Copy the subset of ../shared/golden that the in-repo tests read into tests/golden/.

The fixtures are outputs of anomalib's own code (see tests/golden/README.md); this script only
selects tensors, byte for byte, so that a fresh clone carries what its tests need (< ~40 MB).
Run: python3 tools/slim_golden.py [SHARED_GOLDEN_DIR] [OUT_DIR]
"""
import json
import shutil
import struct
import sys
from pathlib import Path

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "golden")
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).resolve().parents[1] / "tests" / "golden")

CORE = ["input", "features.0", "features.1", "features.2", "z.0", "z.1", "z.2",
        "log_jac_det", "anomaly_map", "pred_score"]
NFA = ["anomalib_nfa_mask_lp", "anomalib_nfa_mask_hp"] + [
    f"nfa_{m}.{k}" for m in ("lp", "hp")
    for k in ("log10_sf.0", "log10_sf.1", "log10_sf.2", "minus_log10_nfa")]
KEEP = {
    # The coarse and middle stages' node outputs are kept; the finest stage's (1.4 MB each)
    # are checked from the full fixture when ../shared/golden is present.
    "expected_random.safetensors": CORE + NFA + [
        "node.flow16_step0.0", "node.flow16_step3.0", "node.split_3.0", "node.up_3.0",
        "node.cat_2.0", "node.flow32_step0.0", "node.flow32_step3.0", "node.split_2.0",
        "node.up_2.0", "node.cat_1.0"] + ["*node_jac.", "*nfa_synth."],
    "expected_images.safetensors": ["input", "z.1", "z.2", "log_jac_det", "anomaly_map",
                                    "pred_score"] + NFA,
}


def read(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


def keep(name, patterns):
    for p in patterns:
        if p.startswith("*") and name.startswith(p[1:]):
            return True
        if name == p:
            return True
    return False


def slim(name, patterns):
    header, data = read(SRC / name)
    meta = header.pop("__metadata__", None)
    out_h, chunks, off = {}, [], 0
    if meta is not None:
        out_h["__metadata__"] = meta
    for k, v in header.items():
        if not keep(k, patterns):
            continue
        b, e = v["data_offsets"]
        chunks.append(data[b:e])
        out_h[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [off, off + e - b]}
        off += e - b
    txt = json.dumps(out_h, separators=(",", ":")).encode()
    txt += b" " * (-len(txt) % 8)
    with open(OUT / name, "wb") as f:
        f.write(struct.pack("<Q", len(txt)) + txt + b"".join(chunks))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SRC / "resnet18_256_s4.safetensors", OUT / "resnet18_256_s4.safetensors")
    (OUT / "inputs").mkdir(exist_ok=True)
    for img in (SRC / "inputs").iterdir():
        shutil.copyfile(img, OUT / "inputs" / img.name)
    for name, patterns in KEEP.items():
        slim(name, patterns)


if __name__ == "__main__":
    main()
