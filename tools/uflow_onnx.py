#!/usr/bin/python3
"""ONNX export of a U-Flow model file through the PyTorch reference (tools/uflow_ref.py).

    /usr/bin/python3 tools/uflow_onnx.py --model M.safetensors --out M.onnx [--opset 17]
    (also: /usr/bin/python3 tools/uflow_ref.py export-onnx --model M --out M.onnx)

The graph is what a user who exports anomalib's model and serves it with ONNX Runtime would
run: input `image` float32 [B, 3, H, W] (normalised), outputs `anomaly_map` [B, 1, H, W] and
the latents `z.0` .. `z.{K-1}` (finest first, as `uflow infer` names them). log_jac_det is
not an output (inference does not need it), so the exporter drops its ops.

B is fixed (--batch, default 1), one file per batch size: with a dynamic batch axis torch
1.13's shape inference gives the latents' unknown spatial sizes one shared symbolic name,
ORT's memory planner then reuses a 16x16 buffer for a 32x32 tensor and the run fails
("Shape mismatch attempting to re-use buffer"). Static shapes are also ORT's best case (every
shape known when it optimises the graph), so the comparison does not favour uflow.

Why a wrapper instead of exporting UflowRef.forward: forward returns a dict of lists, which
the tracer cannot name, and its feature LayerNorm takes its shape from the traced tensor (a
non-constant the exporter refuses); the wrapper returns a flat tuple, takes that shape from
the LayerNorm weights and otherwise calls the reference's own pieces (backbone, flow,
anomaly_map), so the graph is the reference's math.
The reference's convolutions already use explicit integer padding (k // 2), which the
exporter of torch 1.13 accepts; padding="same" would not export for the strided case.

Opset 17 is the highest Debian's torch 1.13 exporter knows; it has LayerNormalization, so
the feature LayerNorms and the CaiT norms stay single nodes. There is no onnx/onnxruntime
Python package here, so the exported graph is checked where it runs: bench/vs_ort.py compares
ORT's anomaly map with `uflow infer`'s on the same input before it times anything.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import uflow_ref  # noqa: E402

OPSET = 17


class ExportWrapper(torch.nn.Module):
    """Tensors of UflowRef become graph initialisers through tracing (they are constants)."""

    def __init__(self, ref):
        super().__init__()
        self.ref = ref
        if ref.backbone is not None:
            self.backbone = ref.backbone   # registered so .eval() reaches its BatchNorms

    def features(self, image):
        if self.ref.backbone is None:
            return self.ref.features(image)[1]
        # the LayerNorm shape from the weights: f.shape would be a traced (non-constant) value
        return [F.layer_norm(f, tuple(w.shape), w, b, 1e-5)
                for f, (w, b) in zip(self.ref.backbone_raw(image), self.ref.ln)]

    def forward(self, image):
        feats = self.features(image)
        z, _ = self.ref.flow(feats)
        amap, _ = self.ref.anomaly_map(z)
        return (amap,) + tuple(z)


def export(model_path, out_path, batch=1, opset=OPSET):
    ref, cfg, _ = uflow_ref.load_model(model_path)
    H, W = ref.cfg["H"], ref.cfg["W"]
    K = ref.K
    wrap = ExportWrapper(ref).eval()
    names = ["anomaly_map"] + ["z.%d" % k for k in range(K)]
    x = torch.randn(batch, 3, H, W, generator=torch.Generator().manual_seed(0))
    tmp = out_path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(wrap, (x,), tmp, input_names=["image"], output_names=names,
                          opset_version=opset, do_constant_folding=True,
                          training=torch.onnx.TrainingMode.EVAL)
    os.replace(tmp, out_path)   # a half-written file never looks like a cached export
    return dict(backbone=ref.cfg["backbone"], input=[batch, 3, H, W], outputs=names, opset=opset,
                bytes=os.path.getsize(out_path))


def add_args(p):
    p.add_argument("--model", required=True, help="uflow model file (.safetensors)")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--batch", type=int, default=1, help="the graph's (fixed) batch size")
    p.add_argument("--opset", type=int, default=OPSET)


def run(a):
    if a.batch < 1:
        raise SystemExit("--batch must be >= 1")
    info = export(a.model, a.out, a.batch, a.opset)
    print(json.dumps(dict(info, model=a.model, onnx=a.out)))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    add_args(ap)
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
