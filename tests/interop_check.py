#!/usr/bin/python3
"""interop_check.py — the `interop` test (meson suite integration): `uflow import` / `uflow export`.

Checkpoints are made by tools/make_ckpt_fixtures.py (Lightning/anomalib-shaped, seeded weights
of tools/uflow_ref.py, a 64x96 resnet18 flow with 2 steps, clamp 1.5, ratio 0.75):
  * import of an anomalib 2.x checkpoint (zip), a 1.x checkpoint (legacy), bare state_dicts
    (zip and legacy): every tensor equals the seeded reference bit for bit, the config carries
    the hyper-parameters, the input size of the pickled pre-processor (or the LayerNorm shapes),
    the Normalize mean/std, the six post-processing statistics and the provenance;
  * import -> `uflow infer` equals tools/uflow_ref.py (torch) on the same tensors: max|err| <=
    1e-4 * max(1, max|ref|) for pred_score, anomaly_map and every z;
  * `uflow predict`'s normalized_score equals anomalib's OneClassPostProcessor formula
    clamp((s - thr) / (max - min) + 0.5, 0, 1) computed here with torch, and its label s' > 0.5;
  * --input-size contradicting the LayerNorm shapes, and every file of tests/golden/ckpt/ (code
    execution via os.system / eval / subprocess, PatchCore, truncated, garbage, empty, deflated,
    complex dtype) fail with exit 1, one line on stderr, and leave nothing at --out; the
    os.system payload never ran;
  * export (when `uflow export` exists): torch.load(weights_only=True) reads the file, an
    nn.Module with exactly the UflowModel parameter names load_state_dict(strict=True)s the
    "model." part, the reference on those tensors gives the same output, and re-import gives
    the same model.
Prints `interop: PASS ...` or `interop: FAIL ...`; exit 0 / 1; 77 without torch.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOLS = os.path.join(ROOT, "tools")
HOSTILE = os.path.join(HERE, "golden", "ckpt")

try:
    import numpy as np
    import torch
    import torchvision  # noqa: F401
except ImportError as e:
    print("interop: SKIP (%s cannot import torch/torchvision: %s)" % (sys.executable, e))
    sys.exit(77)

sys.path.insert(0, TOOLS)
import make_ckpt_fixtures as mk  # noqa: E402
import safetensors_io as stio  # noqa: E402
import uflow_ref  # noqa: E402

FAILS = []
CHECKS = [0]


def check(cond, what):
    CHECKS[0] += 1
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)
    return cond


def run(args, expect_rc=0):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if expect_rc is not None and r.returncode != expect_rc:
        print("command:", " ".join(args), "\nstdout:", r.stdout, "\nstderr:", r.stderr)
    return r


def fixture_args(out, **kw):
    a = argparse.Namespace(out=out, input_size="64x96", flow_steps=2, clamp=1.5, ratio=0.75,
                           permute_soft=False, seed=7, legacy=False, postproc=mk.POSTPROC)
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def config_of(path):
    _, meta = stio.load(path)
    return json.loads(meta["config"])


def same_tensors(path, ref, label):
    t, _ = stio.load(path)
    check(sorted(t) == sorted(ref), "%s: tensor names differ from the reference (%d vs %d)"
          % (label, len(t), len(ref)))
    bad = [k for k in ref if k in t and not (t[k].shape == ref[k].shape and
                                             np.array_equal(t[k], ref[k]))]
    check(not bad, "%s: tensors differ: %s" % (label, bad[:3]))


def compare_outputs(uflow, model, ref_model, tmp, label):
    x = torch.from_numpy(uflow_ref.formula_input((2, 3, 64, 96), 11)).float()
    inp = os.path.join(tmp, "in.safetensors")
    out = os.path.join(tmp, "out.safetensors")
    stio.save({"image": x.numpy()}, {}, inp)
    r = run([uflow, "infer", "--model", model, "--tensor", inp, "--out", out])
    if not check(r.returncode == 0, "%s: uflow infer failed: %s" % (label, r.stderr.strip())):
        return
    got, _ = stio.load(out)
    with torch.no_grad():
        exp = uflow_ref.outputs_dict(ref_model.forward(x))
    worst = 0.0
    for k in ["pred_score", "anomaly_map", "z.0", "z.1", "z.2"]:
        e = np.abs(got[k].astype(np.float64) - exp[k].astype(np.float64)).max()
        tol = 1e-4 * max(1.0, float(np.abs(exp[k]).max()))
        worst = max(worst, e / max(1.0, float(np.abs(exp[k]).max())))
        check(e <= tol, "%s: %s max|err| %.3g > %.3g" % (label, k, e, tol))
    print("%s: uflow infer vs torch reference: max relative error %.2g" % (label, worst))
    return got


def check_import(uflow, tmp, ref_t, ref_model):
    l2 = os.path.join(tmp, "l2.ckpt")
    mk.cmd_lightning2(fixture_args(l2))
    m2 = os.path.join(tmp, "l2.safetensors")
    r = run([uflow, "import", l2, "--out", m2, "--name", "from-anomalib"])
    if not check(r.returncode == 0, "2.x import failed: %s" % r.stderr.strip()):
        return
    same_tensors(m2, ref_t, "2.x")
    c = config_of(m2)
    exp = dict(backbone="resnet18", flow_steps=2, affine_clamp=1.5,
               affine_subnet_channels_ratio=0.75, permute_soft=False, input_size=[64, 96],
               name="from-anomalib")
    for k, v in exp.items():
        check(c.get(k) == v, "2.x config %s = %r, expected %r" % (k, c.get(k), v))
    keys = ["image_threshold", "pixel_threshold", "pred_scores_min", "pred_scores_max",
            "anomaly_maps_min", "anomaly_maps_max"]
    for k, v in zip(keys, mk.POSTPROC):
        check(c.get(k) == v, "2.x config %s = %r, expected %r" % (k, c.get(k), v))
    check(np.allclose(c.get("mean", []), mk.MEAN) and np.allclose(c.get("std", []), mk.STD),
          "2.x mean/std from the pickled Normalize")
    p = c.get("imported_from", {})
    import hashlib
    sha = hashlib.sha256(open(l2, "rb").read()).hexdigest()
    check(p.get("file") == "l2.ckpt" and p.get("sha256") == sha and
          p.get("kind") == "anomalib 2.x Lightning checkpoint" and
          p.get("serialization") == "torch zip" and p.get("pytorch_lightning_version") == "2.4.0"
          and p.get("epoch") == 4 and p.get("global_step") == 125 and
          p.get("input_size_from") == "pre-processor Resize((64, 96))",
          "2.x provenance: %r" % p)
    got = compare_outputs(uflow, m2, ref_model, tmp, "2.x import")

    # the normalised score: thresholds around the actual raw score so the formula is not clamped
    if got is not None:
        s = float(got["pred_score"][0])
        pp = (s - 0.7, 0.5 * s, s - 4.0, s + 6.0, -1.0, 2.0 * s + 1.0)
        l2b = os.path.join(tmp, "l2b.ckpt")
        mk.cmd_lightning2(fixture_args(l2b, postproc=pp))
        m2b = os.path.join(tmp, "l2b.safetensors")
        r = run([uflow, "import", "--quiet", l2b, "--out", m2b])
        check(r.returncode == 0 and r.stderr.strip().startswith("uflow import: wrote"),
              "import --quiet: %s" % r.stderr.strip())
        png = os.path.join(tmp, "img.png")
        img = np.clip(np.random.default_rng(3).normal(128, 40, (64, 96, 3)), 0, 255).astype(np.uint8)
        torchvision.io.write_png(torch.from_numpy(img).permute(2, 0, 1).contiguous(), png)
        r = run([uflow, "predict", "--model", m2b, png])
        if check(r.returncode == 0, "predict: %s" % r.stderr.strip()):
            j = json.loads(r.stdout.splitlines()[0])
            raw = torch.tensor(j["score"], dtype=torch.float64)
            norm = ((raw - pp[0]) / (pp[3] - pp[2])) + 0.5
            norm = torch.maximum(torch.minimum(norm, torch.tensor(1.0)), torch.tensor(0.0))
            check(abs(j.get("normalized_score", -1) - float(norm)) <= 1e-5,
                  "normalized_score %r, OneClassPostProcessor formula %r"
                  % (j.get("normalized_score"), float(norm)))
            check(j.get("label") == (bool(norm > 0.5) and "anomalous" or "normal") or
                  j.get("label") == bool(norm > 0.5), "label %r for %r" % (j.get("label"), float(norm)))
            print("normalised score %.6f (formula %.6f), label %r"
                  % (j.get("normalized_score", -1), float(norm), j.get("label")))

    # 1.x, legacy serialisation
    l1 = os.path.join(tmp, "l1.ckpt")
    mk.cmd_lightning1(fixture_args(l1, legacy=True))
    m1 = os.path.join(tmp, "l1.safetensors")
    r = run([uflow, "import", l1, "--out", m1])
    if check(r.returncode == 0, "1.x import failed: %s" % r.stderr.strip()):
        same_tensors(m1, ref_t, "1.x")
        c = config_of(m1)
        for k, v in zip(keys, mk.POSTPROC):
            check(c.get(k) == v, "1.x config %s = %r, expected %r" % (k, c.get(k), v))
        check(c.get("input_size") == [64, 96] and c.get("affine_clamp") == 1.5,
              "1.x size/clamp: %r" % c)
        check(c["imported_from"].get("kind") == "anomalib 1.x checkpoint" and
              c["imported_from"].get("serialization") == "torch legacy", "1.x provenance")

    # bare state_dicts: no hyper-parameters, everything inferred from the tensors and noted
    for legacy in (False, True):
        sd = os.path.join(tmp, "sd%d.pt" % legacy)
        mk.cmd_state_dict(fixture_args(sd, legacy=legacy))
        ms = os.path.join(tmp, "sd.safetensors")
        r = run([uflow, "import", sd, "--out", ms])
        if not check(r.returncode == 0, "state_dict import (legacy=%d): %s" % (legacy, r.stderr)):
            continue
        same_tensors(ms, ref_t, "state_dict")
        c = config_of(ms)
        check(c.get("input_size") == [64, 96] and c.get("affine_subnet_channels_ratio") == 0.75
              and c.get("flow_steps") == 2 and c.get("affine_clamp") == 2.0,
              "state_dict inferred config: %r" % c)
        check("affine_clamp 2.0" in r.stderr and "LayerNorm" in r.stderr,
              "state_dict import notes the defaults it took: %r" % r.stderr)
        if not legacy:
            compare_outputs(uflow, ms, uflow_ref.UflowRef(ref_t, dict(config_of(ms))), tmp,
                            "state_dict import (clamp 2.0)")

    # a soft-permutation model without hyper-parameters: permute_soft inferred from w_perm
    sds = os.path.join(tmp, "soft.pt")
    mk.cmd_state_dict(fixture_args(sds, permute_soft=True, seed=9))
    msoft = os.path.join(tmp, "soft.safetensors")
    r = run([uflow, "import", sds, "--out", msoft])
    if check(r.returncode == 0, "soft state_dict import: %s" % r.stderr.strip()):
        c = config_of(msoft)
        check(c.get("permute_soft") is True and "permute_soft true (inferred" in r.stderr,
              "permute_soft inferred: %r / %r" % (c.get("permute_soft"), r.stderr))
        st, _ = uflow_ref.make_model_tensors(mk.cfg_of(fixture_args(None, permute_soft=True)), 9)
        compare_outputs(uflow, msoft, uflow_ref.UflowRef(st, dict(c)), tmp, "soft state_dict")

    # --input-size against the LayerNorm shapes; an existing --out stays untouched
    keep = os.path.join(tmp, "keep.safetensors")
    open(keep, "wb").write(b"old")
    r = run([uflow, "import", l2, "--out", keep, "--input-size", "64"], None)
    check(r.returncode == 1 and "contradicts the feature LayerNorm" in r.stderr and
          open(keep, "rb").read() == b"old", "--input-size 64: %r" % r.stderr)


def check_hostile(uflow, tmp):
    marker = "/tmp/uflow_pwned"
    if os.path.exists(marker):
        os.unlink(marker)
    expect = {"os_system.ckpt": "posix.system", "eval_legacy.pt": "__builtin__.eval",
              "subprocess.ckpt": "Popen", "patchcore.ckpt": "not a U-Flow checkpoint",
              "truncated.pt": "zip", "garbage.pt": "not a torch checkpoint",
              "empty.pt": "empty file", "deflated.pt": "compressed",
              "complex.pt": "ComplexFloatStorage", "small_zip.pt": "not a U-Flow",
              "small_legacy.pt": "not a U-Flow", "f16.pt": "not a U-Flow",
              # U-Flow-shaped but not a model: refused by the final validation, which names
              # the problem and not the temporary file
              "mini2x.ckpt": "does not load: config: input_size 8x12",
              "mini1x_legacy.ckpt": "does not load: config: input_size 8x12"}
    for name, needle in sorted(expect.items()):
        out = os.path.join(tmp, "h.safetensors")
        r = run([uflow, "import", os.path.join(HOSTILE, name), "--out", out], None)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 1 and len(lines) == 1 and needle in lines[0] and
              not os.path.exists(out) and
              not [f for f in os.listdir(tmp) if f.startswith("h.safetensors")],
              "%s: rc %d, stderr %r (want one line with %r, no output)"
              % (name, r.returncode, r.stderr, needle))
    check(not os.path.exists(marker), "the os.system payload ran")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uflow", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="uflow-interop-") as tmp:
        ref_t, ref_cfg = uflow_ref.make_model_tensors(mk.cfg_of(fixture_args(None)), 7)
        ref_model = uflow_ref.UflowRef(ref_t, ref_cfg)
        check_import(a.uflow, tmp, ref_t, ref_model)
        check_hostile(a.uflow, tmp)
        exp = os.path.join(HERE, "interop_export.py")
        if os.path.exists(exp):
            sys.path.insert(0, HERE)
            import interop_export
            interop_export.check_export(a.uflow, tmp, ref_t, ref_model, check, run, compare_outputs,
                                        fixture_args)
    if FAILS:
        print("interop: FAIL (%d of %d checks)" % (len(FAILS), CHECKS[0]))
        return 1
    print("interop: PASS (%d checks)" % CHECKS[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
