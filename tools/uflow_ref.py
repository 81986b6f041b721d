#!/usr/bin/python3
"""Independent PyTorch reference of U-Flow inference (anomalib `uflow`), written from
docs/uflow-math.md (the project's U-Flow math).  Not anomalib code.  Run with Debian's /usr/bin/python3
(torch 1.13, torchvision 0.14, numpy).

Model file = safetensors with anomalib's `UflowModel.state_dict()` key names (an optional
`model.` prefix is accepted) and `__metadata__["config"]` = JSON
    {"backbone": "resnet18"|"wide_resnet50_2"|"mcait", "input_size": 256 | [H, W],
     "flow_steps": S, "affine_clamp": c, "affine_subnet_channels_ratio": r,
     "permute_soft": bool, ...}

Subcommands
    check        --golden DIR              compare against anomalib golden fixtures (docs/uflow-math.md "Test fixtures")
    make-model   [model opts] --seed S --out M.safetensors
    run          --model M --input IN --out OUT
    make-fixture --out-dir DIR --seed S [model opts] --batch B [--omit-backbone]
    check-fixture --dir DIR                re-run a make-fixture dir, require bit-equality
    sanity       [model opts] --batch B    conv==gather for hard perms, inverse(forward)==id,
                                           ljd == autograd log|det| (float64, 16x32 input)
    check-cait   --dir DIR                 the CaiT blocks below vs timm's outputs in the block
                                           fixtures (tests/golden/cait)
    mcait-expected --model M --out E      expected outputs of an mcait model (made by
                                           `uflow create --backbone mcait`) on the formula
                                           input, trimmed to a small file (tests/golden/mcait)
    export-onnx  --model M --out M.onnx    the same model as an ONNX graph (tools/uflow_onnx.py)

MCAIT (docs/uflow-math.md "mcait"): `feature_extractor.extractor1.*` = timm cait_m48_448 (D 768, 16 heads,
blocks 0..40 used of 48), `feature_extractor.extractor2.*` = cait_s24_224 (D 384, 8 heads,
blocks 0..20 used of 24) on interpolate(x, 224, bicubic, align_corners=True). The CaiT
blocks are written here from docs/uflow-math.md in plain torch (timm is not needed): LayerScaleBlock
with TalkingHeadAttn, erf GELU, LayerNorm eps 1e-6; no feature LayerNorm. make-model cannot
generate mcait models (1.6 GB): `uflow create --backbone mcait` writes them, and the
reference reads them like any model file.
(global option --threads T before the subcommand; `check` defaults to 2 threads, which
reproduces the golden tensors bit-exactly)
model opts: --backbone --input-size HxW|N --flow-steps --clamp --ratio [--permute-soft]
            [--formula-backbone]

=====================================================================================
FORMULA BACKBONE (`--formula-backbone`; used by committed fixtures, which omit the
backbone tensors so that the C test regenerates them)
-------------------------------------------------------------------------------------
Every backbone tensor (keys `feature_extractor.feature_extractor.*`, i.e. conv1, bn1,
layer1..layer3 incl. downsample.0 / downsample.1) is a pure function of its shape:

  * conv weight W of shape (Cout, Cin, kh, kw), F = Cin*kh*kw (fan_in). For flat C-order
    element index i = 0 .. Cout*Cin*kh*kw-1 (uint64 arithmetic):
        u    = ((i * 2654435761) mod 2^32) / 2^32          # exact in double
        W[i] = (float32)( ((u - 0.5) * 2.0) * sqrt(3.0 / F) )
    all in IEEE double, evaluated left to right exactly as written
    (u - 0.5 and *2.0 are exact; 3.0/F, sqrt and the final product are each one
    correctly rounded double op), then one round-to-nearest cast to float32.
  * BatchNorm with C channels, for c = 0 .. C-1 (c converted to double):
        weight[c]       = (float32)(1.0 + 0.1 * sin(c))
        bias[c]         = (float32)(0.1 * cos(c))
        running_mean[c] = (float32)(0.05 * sin(2.0 * c))
        running_var[c]  = (float32)(1.0 + 0.2 * fabs(cos(3.0 * c)))
        num_batches_tracked = 0 (0-d int64)
    (double precision libm sin/cos, then cast to float32.)
Everything else (feature LayerNorm affines, the whole flow) is seeded-random and stored.
=====================================================================================

Randomisation of `make-model` (numpy Generator default_rng(seed), float64 then cast
to float32), mirroring docs/uflow-math.md "Test fixtures" so that every parameter matters:
  backbone conv (non-formula): N(0, sqrt(2/fan_out)) (torchvision/timm kaiming init)
  BN (non-formula): weight U(0.5,1.5), bias N(0,0.2), running_mean N(0,0.2),
                    running_var U(0.5,2.0), num_batches_tracked 0
  LayerNorm: weight U(0.7,1.3), bias N(0,0.1)
  AllInOneBlock: global_scale U(7,13), global_offset N(0,0.2),
      w_perm: hard one-hot permutation w[i, idx[i]] = 1 (idx = rng.permutation(C)),
              or with --permute-soft a random rotation (QR of a gaussian, sign-fixed,
              det +1); w_perm_inv = transpose
      subnet.0.weight U(-1/sqrt(fan_in), 1/sqrt(fan_in)), subnet.0.bias N(0,0.1)
      subnet.2.weight N(0, 3/sqrt(fan_in)), subnet.2.bias N(0,0.5)
  IRevNetUpsampling: downsample_kernel (C,1,2,2), row 4g+k one-hot at k.
The make-fixture input `image` is N(0,1) float32 from default_rng(seed + 1000003).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as stio  # noqa: E402

BB_PREFIX = "feature_extractor.feature_extractor."
LN_PREFIX = "feature_extractor.feature_normalizations."
FLOW_PREFIX = "flow.module_list."

BACKBONES = {
    "resnet18": dict(channels=[64, 128, 256], scales=[4, 8, 16]),
    "wide_resnet50_2": dict(channels=[256, 512, 1024], scales=[4, 8, 16]),
    "mcait": dict(channels=[768, 384], scales=[16, 32]),
}
CAIT_PREFIX = "feature_extractor.extractor%d."
# key, timm model, dim, heads, depth, blocks used, tokens per side
CAITS = [("extractor1", "cait_m48_448", 768, 16, 48, 41, 28),
         ("extractor2", "cait_s24_224", 384, 8, 24, 21, 14)]


# ------------------------------------------------------------------------------------
# configuration / layout
# ------------------------------------------------------------------------------------
def parse_hw(v):
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1])
    if isinstance(v, int):
        return v, v
    s = str(v).lower()
    if "x" in s:
        h, w = s.split("x")
        return int(h), int(w)
    return int(s), int(s)


def norm_config(cfg):
    cfg = dict(cfg)
    if cfg.get("backbone") not in BACKBONES:
        raise ValueError("unsupported backbone %r" % cfg.get("backbone"))
    H, W = parse_hw(cfg["input_size"])
    if cfg["backbone"] == "mcait" and (H, W) != (448, 448):
        raise ValueError("the mcait backbone requires input_size 448x448, got %dx%d" % (H, W))
    if H % 16 or W % 16:
        raise ValueError("input size must be a multiple of 16, got %dx%d" % (H, W))
    cfg["H"], cfg["W"] = H, W
    cfg["flow_steps"] = int(cfg.get("flow_steps", 4))
    if cfg["flow_steps"] < 1:
        raise ValueError("flow_steps must be >= 1")
    cfg["affine_clamp"] = float(cfg.get("affine_clamp", 2.0))
    cfg["affine_subnet_channels_ratio"] = float(cfg.get("affine_subnet_channels_ratio", 1.0))
    cfg["permute_soft"] = bool(cfg.get("permute_soft", False))
    return cfg


def flow_layout(cfg):
    """Per-stage list, coarsest stage first.

    Each entry: dict(scale=i (1-based, 1 = finest), C, h, w, blocks=[module indices],
    split/up/cat module indices (None for the last stage), a (split s0 size)).
    """
    bb = BACKBONES[cfg["backbone"]]
    chans, scales = bb["channels"], bb["scales"]
    K = len(chans)
    H, W = cfg["H"], cfg["W"]
    S = cfg["flow_steps"]
    hw = [(H // s, W // s) for s in scales]
    stages = []
    idx = 0
    C = chans[K - 1]
    for i in range(K, 0, -1):
        h, w = hw[i - 1]
        st = dict(scale=i, C=C, h=h, w=w, blocks=list(range(idx, idx + S)))
        idx += S
        if i > 1:
            a = (C // 8) * 4
            st.update(a=a, b=C - a, split=idx, up=idx + 1, cat=idx + 2)
            idx += 3
            C = chans[i - 2] + a // 4
        stages.append(st)
    return stages


def block_shapes(C, ratio, k):
    C1 = C - C // 2
    C2 = C // 2
    M = int(C1 * ratio)
    return [
        ("global_scale", (1, C, 1, 1)),
        ("global_offset", (1, C, 1, 1)),
        ("w_perm", (C, C, 1, 1)),
        ("w_perm_inv", (C, C, 1, 1)),
        ("subnet.0.weight", (M, C1, k, k)),
        ("subnet.0.bias", (M,)),
        ("subnet.2.weight", (2 * C2, M, k, k)),
        ("subnet.2.bias", (2 * C2,)),
    ]


def make_torchvision_backbone(name):
    ctor = getattr(torchvision.models, name)
    try:
        m = ctor(weights=None)
    except TypeError:  # older torchvision
        m = ctor(pretrained=False)
    return m


def backbone_keys(name):
    """(key, shape, dtype) of stem..layer3 in state_dict order (no prefix)."""
    m = make_torchvision_backbone(name)
    out = []
    for k, v in m.state_dict().items():
        if k.startswith("layer4.") or k.startswith("fc."):
            continue
        out.append((k, tuple(v.shape), v.dtype))
    return out


# ------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------
# ------------------------------------------------------------------------------------
# CaiT (timm cait_*: LayerScaleBlock + TalkingHeadAttn), written from docs/uflow-math.md "mcait"
# ------------------------------------------------------------------------------------
class CaitRef:
    """A timm CaiT cut after `used` blocks + its final norm, as anomalib's extractor runs it.
    `get(key)` returns the tensor of timm key `key` (prefix already applied)."""

    def __init__(self, get, D, heads, used, grid):
        self.D, self.H, self.grid = D, heads, grid
        N = grid * grid

        def g(k, shape):
            v = get(k)
            if tuple(v.shape) != tuple(shape):
                raise ValueError("%s: shape %s, expected %s" % (k, tuple(v.shape), tuple(shape)))
            return v

        self.patch_w = g("patch_embed.proj.weight", (D, 3, 16, 16))
        self.patch_b = g("patch_embed.proj.bias", (D,))
        self.pos = g("pos_embed", (1, N, D))
        self.blocks = []
        for i in range(used):
            p = {}
            for k, shp in (("gamma_1", (D,)), ("gamma_2", (D,)), ("norm1.weight", (D,)),
                           ("norm1.bias", (D,)), ("attn.qkv.weight", (3 * D, D)),
                           ("attn.qkv.bias", (3 * D,)), ("attn.proj.weight", (D, D)),
                           ("attn.proj.bias", (D,)), ("attn.proj_l.weight", (heads, heads)),
                           ("attn.proj_l.bias", (heads,)), ("attn.proj_w.weight", (heads, heads)),
                           ("attn.proj_w.bias", (heads,)), ("norm2.weight", (D,)),
                           ("norm2.bias", (D,)), ("mlp.fc1.weight", (4 * D, D)),
                           ("mlp.fc1.bias", (4 * D,)), ("mlp.fc2.weight", (D, 4 * D)),
                           ("mlp.fc2.bias", (D,))):
                p[k] = g("blocks.%d.%s" % (i, k), shp)
            self.blocks.append(p)
        self.norm_w = g("norm.weight", (D,))
        self.norm_b = g("norm.bias", (D,))

    def patch_embed(self, img):
        x = F.conv2d(img, self.patch_w, self.patch_b, stride=16)
        return x.flatten(2).transpose(1, 2)              # (B, N, D), row-major patches

    def attention(self, x, p):
        B, N, C = x.shape
        H = self.H
        qkv = F.linear(x, p["attn.qkv.weight"], p["attn.qkv.bias"])
        qkv = qkv.reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * ((C // H) ** -0.5), qkv[1], qkv[2]   # q scaled before q k^T
        attn = q @ k.transpose(-2, -1)                            # (B, H, N, N)
        attn = F.linear(attn.permute(0, 2, 3, 1), p["attn.proj_l.weight"],
                        p["attn.proj_l.bias"]).permute(0, 3, 1, 2)   # mix heads, pre-softmax
        attn = attn.softmax(dim=-1)
        attn = F.linear(attn.permute(0, 2, 3, 1), p["attn.proj_w.weight"],
                        p["attn.proj_w.bias"]).permute(0, 3, 1, 2)   # mix heads, post-softmax
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return F.linear(x, p["attn.proj.weight"], p["attn.proj.bias"])

    def block(self, x, p):
        D = self.D
        y = F.layer_norm(x, (D,), p["norm1.weight"], p["norm1.bias"], 1e-6)
        x = x + p["gamma_1"] * self.attention(y, p)
        y = F.layer_norm(x, (D,), p["norm2.weight"], p["norm2.bias"], 1e-6)
        h = F.gelu(F.linear(y, p["mlp.fc1.weight"], p["mlp.fc1.bias"]))   # exact (erf) GELU
        return x + p["gamma_2"] * F.linear(h, p["mlp.fc2.weight"], p["mlp.fc2.bias"])

    def final(self, x):
        x = F.layer_norm(x, (self.D,), self.norm_w, self.norm_b, 1e-6)
        B = x.shape[0]
        return x, x.permute(0, 2, 1).reshape(B, self.D, self.grid, self.grid)

    def forward(self, img, trace=None):
        x = self.patch_embed(img)
        if trace is not None:
            trace["patch_embed_out"] = x
        x = x + self.pos
        if trace is not None:
            trace["tokens_in"] = x
        for i, p in enumerate(self.blocks):
            x = self.block(x, p)
            if trace is not None:
                trace["block%d_out" % i] = x
        tok, fmap = self.final(x)
        if trace is not None:
            trace["norm_out"] = tok
        return fmap


def resize_224(x):
    """anomalib's 448 -> 224 downscale for extractor2 (docs/uflow-math.md "Interpolation")."""
    return F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=True)


class UflowRef:
    def __init__(self, tensors, cfg):
        self.cfg = norm_config(cfg)
        t = {}
        for k, v in tensors.items():
            if k.startswith("model."):
                k = k[len("model."):]
            t[k] = v
        self.t = t
        name = self.cfg["backbone"]
        bb = BACKBONES[name]
        self.chans, self.scales = bb["channels"], bb["scales"]
        self.K = len(self.chans)

        H, W = self.cfg["H"], self.cfg["W"]
        self.ln = []
        if name == "mcait":
            self.backbone = None
            self.caits = []
            for e, (_, _, D, heads, _, used, grid) in enumerate(CAITS):
                pre = CAIT_PREFIX % (e + 1)
                self.caits.append(CaitRef(lambda k, pre=pre: self._p(pre + k), D, heads, used, grid))
        else:
            self._load_resnet(name, t)
            for k in range(self.K):
                wgt = self._p(LN_PREFIX + "%d.weight" % k)
                bias = self._p(LN_PREFIX + "%d.bias" % k)
                exp = (self.chans[k], H // self.scales[k], W // self.scales[k])
                if tuple(wgt.shape) != exp or tuple(bias.shape) != exp:
                    raise ValueError("LayerNorm %d shape %s, expected %s" % (k, tuple(wgt.shape), exp))
                self.ln.append((wgt, bias))

        self.stages = flow_layout(self.cfg)
        ratio = self.cfg["affine_subnet_channels_ratio"]
        self.blocks = {}
        for st in self.stages:
            for j, n in enumerate(st["blocks"]):
                k = 3 if j % 2 == 0 else 1
                p = {}
                for name_, shape in block_shapes(st["C"], ratio, k):
                    v = self._p(FLOW_PREFIX + "%d.%s" % (n, name_))
                    if tuple(v.shape) != shape:
                        raise ValueError("flow %d.%s shape %s, expected %s"
                                         % (n, name_, tuple(v.shape), shape))
                    p[name_] = v
                p["k"] = k
                self.blocks[n] = p

    def _load_resnet(self, name, t):
        m = make_torchvision_backbone(name)
        sd = {}
        for k, shape, dtype in backbone_keys(name):
            key = BB_PREFIX + k
            if key not in t:
                raise KeyError("missing backbone tensor %s" % key)
            a = np.asarray(t[key])
            if tuple(a.shape) != shape:
                raise ValueError("%s: shape %s, expected %s" % (key, a.shape, shape))
            sd[k] = torch.from_numpy(np.array(a, order="C")).to(dtype)
        missing, unexpected = m.load_state_dict(sd, strict=False)
        assert not unexpected, unexpected
        assert all(k.startswith("layer4.") or k.startswith("fc.") for k in missing), missing
        m.layer4 = None
        m.fc = None
        m.eval()
        self.backbone = m

    def _p(self, key):
        if key not in self.t:
            raise KeyError("missing tensor %s" % key)
        return torch.from_numpy(np.array(self.t[key], order="C")).float()

    # -- pieces ---------------------------------------------------------------------
    def backbone_raw(self, x):
        m = self.backbone
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        f1 = m.layer1(x)
        f2 = m.layer2(f1)
        f3 = m.layer3(f2)
        return [f1, f2, f3]

    def features(self, x):
        if self.backbone is None:   # mcait: the CaiTs' own final norms, no extra LayerNorm
            feats = [self.caits[0].forward(x), self.caits[1].forward(resize_224(x))]
            return feats, feats
        raw = self.backbone_raw(x)
        feats = []
        for f, (w, b) in zip(raw, self.ln):
            feats.append(F.layer_norm(f, tuple(f.shape[1:]), w, b, 1e-5))
        return raw, feats

    def block(self, x, p):
        clamp = self.cfg["affine_clamp"]
        C = x.shape[1]
        C1 = C - C // 2
        C2 = C // 2
        pad = p["k"] // 2
        x1, x2 = x[:, :C1], x[:, C1:]
        h = F.conv2d(x1, p["subnet.0.weight"], p["subnet.0.bias"], padding=pad)
        h = F.relu(h)
        a = F.conv2d(h, p["subnet.2.weight"], p["subnet.2.bias"], padding=pad)
        a = a * 0.1
        s, t = a[:, :C2], a[:, C2:]
        J = clamp * torch.tanh(s)
        x2n = x2 * torch.exp(J) + t
        y = torch.cat([x1, x2n], dim=1)
        scale = 0.1 * F.softplus(p["global_scale"], beta=0.5)
        v = y * scale + p["global_offset"]
        out = F.conv2d(v, p["w_perm"])
        npix = x.shape[2] * x.shape[3]
        ljd = J.sum(dim=(1, 2, 3)) + npix * torch.sum(torch.log(scale))
        return out, ljd

    def flow(self, feats, nodes=None):
        B = feats[0].shape[0]
        ljd = torch.zeros(B, dtype=feats[0].dtype)
        K = self.K
        z = [None] * K
        if nodes is not None:
            for k in range(K):
                nodes["node.cond_%d.0" % self.chans[k]] = feats[k]
        cur = feats[K - 1]
        for st in self.stages:
            i = st["scale"]
            for j, n in enumerate(st["blocks"]):
                cur, lj = self.block(cur, self.blocks[n])
                ljd = ljd + lj
                if nodes is not None:
                    nm = "flow%d_step%d" % (cur.shape[3], j)
                    nodes["node.%s.0" % nm] = cur
                    nodes["node_jac.%s" % nm] = lj
            if i > 1:
                a = st["a"]
                s0, s1 = cur[:, :a], cur[:, a:]
                z[i - 1] = s1
                u = F.pixel_shuffle(s0, 2)
                cur = torch.cat([feats[i - 2], u], dim=1)
                if nodes is not None:
                    zero = torch.zeros(B)
                    nodes["node.split_%d.0" % i] = s0
                    nodes["node.split_%d.1" % i] = s1
                    nodes["node.up_%d.0" % i] = u
                    nodes["node.cat_%d.0" % (i - 1)] = cur
                    nodes["node_jac.split_%d" % i] = zero
                    nodes["node_jac.up_%d" % i] = zero
                    nodes["node_jac.cat_%d" % (i - 1)] = zero
            else:
                z[0] = cur
        if nodes is not None:
            for k in range(K):
                nodes["node.output_scale_%d.0" % (k + 1)] = z[k]
        return z, ljd

    # -- inverse (not needed for inference; used by `sanity`) -------------------------
    def block_inverse(self, out, p):
        clamp = self.cfg["affine_clamp"]
        C = out.shape[1]
        C1 = C - C // 2
        C2 = C // 2
        pad = p["k"] // 2
        v = F.conv2d(out, p["w_perm_inv"])
        scale = 0.1 * F.softplus(p["global_scale"], beta=0.5)
        y = (v - p["global_offset"]) / scale
        x1, y2 = y[:, :C1], y[:, C1:]
        h = F.relu(F.conv2d(x1, p["subnet.0.weight"], p["subnet.0.bias"], padding=pad))
        a = F.conv2d(h, p["subnet.2.weight"], p["subnet.2.bias"], padding=pad) * 0.1
        J = clamp * torch.tanh(a[:, :C2])
        x2 = (y2 - a[:, C2:]) * torch.exp(-J)
        return torch.cat([x1, x2], dim=1)

    def flow_inverse(self, z):
        K = self.K
        feats = [None] * K
        cur = z[0]
        for st in reversed(self.stages):
            for n in reversed(st["blocks"]):
                cur = self.block_inverse(cur, self.blocks[n])
            i = st["scale"]
            if i < K:
                # cur is the concat of the scale-i feature and up_(i+1)
                c = self.chans[i - 1]
                feats[i - 1] = cur[:, :c]
                s0 = F.pixel_unshuffle(cur[:, c:], 2)
                cur = torch.cat([s0, z[i]], dim=1)
            else:
                feats[K - 1] = cur
        return feats

    def flow_to(self, dtype):
        for p in self.blocks.values():
            for k in list(p):
                if torch.is_tensor(p[k]):
                    p[k] = p[k].to(dtype)

    def anomaly_map(self, z):
        H, W = self.cfg["H"], self.cfg["W"]
        ups = []
        for zk in z:
            p = torch.exp(-0.5 * torch.mean(zk ** 2, dim=1, keepdim=True))
            ups.append(F.interpolate(p, size=(H, W), mode="bilinear", align_corners=False))
        amap = 1 - torch.mean(torch.stack(ups, dim=-1), dim=-1)
        score = torch.amax(amap, dim=(-2, -1))  # (B,1) as anomalib
        return amap, score

    @torch.no_grad()
    def forward(self, image, nodes=None):
        if image.shape[2] != self.cfg["H"] or image.shape[3] != self.cfg["W"]:
            raise ValueError("image %s does not match input size %dx%d"
                             % (tuple(image.shape), self.cfg["H"], self.cfg["W"]))
        raw, feats = self.features(image)
        z, ljd = self.flow(feats, nodes)
        amap, score = self.anomaly_map(z)
        return dict(backbone_raw=raw, features=feats, z=z, log_jac_det=ljd,
                    anomaly_map=amap, pred_score=score)


def load_model(path, extra=None):
    t, meta = stio.load(path)
    if extra:
        t = dict(extra, **t)
    cfg = json.loads(meta["config"])
    return UflowRef(t, cfg), cfg, meta


# ------------------------------------------------------------------------------------
# model generation
# ------------------------------------------------------------------------------------
def formula_conv(shape):
    n = int(np.prod(shape))
    fan_in = int(np.prod(shape[1:]))
    i = np.arange(n, dtype=np.uint64)
    u = ((i * np.uint64(2654435761)) % np.uint64(1 << 32)).astype(np.float64) / 4294967296.0
    w = ((u - 0.5) * 2.0) * math.sqrt(3.0 / fan_in)
    return w.astype(np.float32).reshape(shape)


def formula_bn(kind, C):
    c = np.arange(C, dtype=np.float64)
    if kind == "weight":
        v = 1.0 + 0.1 * np.sin(c)
    elif kind == "bias":
        v = 0.1 * np.cos(c)
    elif kind == "running_mean":
        v = 0.05 * np.sin(2.0 * c)
    elif kind == "running_var":
        v = 1.0 + 0.2 * np.abs(np.cos(3.0 * c))
    else:
        raise ValueError(kind)
    return v.astype(np.float32)


def gen_backbone(name, rng, formula):
    out = {}
    for k, shape, dtype in backbone_keys(name):
        kind = k.rsplit(".", 1)[1]
        if kind == "num_batches_tracked":
            v = np.array(0, dtype=np.int64)
        elif len(shape) == 4:
            if formula:
                v = formula_conv(shape)
            else:
                fan_out = shape[0] * shape[2] * shape[3]
                v = rng.normal(0.0, math.sqrt(2.0 / fan_out), size=shape).astype(np.float32)
        else:
            C = shape[0]
            if formula:
                v = formula_bn(kind, C)
            elif kind == "weight":
                v = rng.uniform(0.5, 1.5, C).astype(np.float32)
            elif kind == "bias":
                v = rng.normal(0.0, 0.2, C).astype(np.float32)
            elif kind == "running_mean":
                v = rng.normal(0.0, 0.2, C).astype(np.float32)
            elif kind == "running_var":
                v = rng.uniform(0.5, 2.0, C).astype(np.float32)
            else:
                raise ValueError(k)
        out[BB_PREFIX + k] = v
    return out


def random_rotation(rng, C):
    a = rng.normal(size=(C, C))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))[None, :]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def make_model_tensors(cfg, seed, formula_backbone=False):
    cfg = norm_config(cfg)
    if cfg["backbone"] == "mcait":
        raise SystemExit("mcait models (1.6 GB) are made by `uflow create --backbone mcait`; "
                         "this reference reads them like any model file")
    rng = np.random.default_rng(seed)
    name = cfg["backbone"]
    bb = BACKBONES[name]
    t = gen_backbone(name, rng, formula_backbone)
    H, W = cfg["H"], cfg["W"]
    for k, (C, s) in enumerate(zip(bb["channels"], bb["scales"])):
        shp = (C, H // s, W // s)
        t[LN_PREFIX + "%d.weight" % k] = rng.uniform(0.7, 1.3, shp).astype(np.float32)
        t[LN_PREFIX + "%d.bias" % k] = rng.normal(0.0, 0.1, shp).astype(np.float32)
    ratio = cfg["affine_subnet_channels_ratio"]
    for st in flow_layout(cfg):
        C = st["C"]
        for j, n in enumerate(st["blocks"]):
            k = 3 if j % 2 == 0 else 1
            shapes = dict(block_shapes(C, ratio, k))
            pre = FLOW_PREFIX + "%d." % n
            t[pre + "global_scale"] = rng.uniform(7.0, 13.0, shapes["global_scale"]).astype(np.float32)
            t[pre + "global_offset"] = rng.normal(0.0, 0.2, shapes["global_offset"]).astype(np.float32)
            if cfg["permute_soft"]:
                w = random_rotation(rng, C).astype(np.float32)
            else:
                idx = rng.permutation(C)
                w = np.zeros((C, C), dtype=np.float32)
                w[np.arange(C), idx] = 1.0
            t[pre + "w_perm"] = np.ascontiguousarray(w.reshape(C, C, 1, 1))
            t[pre + "w_perm_inv"] = np.ascontiguousarray(w.T.reshape(C, C, 1, 1))
            s0w, s2w = shapes["subnet.0.weight"], shapes["subnet.2.weight"]
            fan0 = int(np.prod(s0w[1:]))
            fan2 = int(np.prod(s2w[1:]))
            bound = 1.0 / math.sqrt(fan0)
            t[pre + "subnet.0.weight"] = rng.uniform(-bound, bound, s0w).astype(np.float32)
            t[pre + "subnet.0.bias"] = rng.normal(0.0, 0.1, s0w[0]).astype(np.float32)
            t[pre + "subnet.2.weight"] = rng.normal(0.0, 3.0 / math.sqrt(fan2), s2w).astype(np.float32)
            t[pre + "subnet.2.bias"] = rng.normal(0.0, 0.5, s2w[0]).astype(np.float32)
        if st["scale"] > 1:
            a = st["a"]
            ker = np.zeros((a, 1, 2, 2), dtype=np.float32)
            for r in range(a):
                q = r % 4
                ker[r, 0, q // 2, q % 2] = 1.0
            t[FLOW_PREFIX + "%d.downsample_kernel" % st["up"]] = ker
    meta_cfg = {
        "backbone": name,
        "input_size": H if H == W else [H, W],
        "flow_steps": cfg["flow_steps"],
        "affine_clamp": cfg["affine_clamp"],
        "affine_subnet_channels_ratio": ratio,
        "permute_soft": cfg["permute_soft"],
        "feature_channels": bb["channels"],
        "feature_scale_factors": bb["scales"],
        "seed": seed,
        "backbone_init": "formula" if formula_backbone else "random",
    }
    return t, meta_cfg


# ------------------------------------------------------------------------------------
# CLI helpers
# ------------------------------------------------------------------------------------
def add_model_opts(p):
    p.add_argument("--backbone", default="resnet18", choices=sorted(BACKBONES))
    p.add_argument("--input-size", default="256", help="N or HxW")
    p.add_argument("--flow-steps", type=int, default=4)
    p.add_argument("--clamp", type=float, default=2.0)
    p.add_argument("--ratio", type=float, default=1.0)
    p.add_argument("--permute-soft", action="store_true")
    p.add_argument("--formula-backbone", action="store_true")
    p.add_argument("--seed", type=int, default=0)


def cfg_from_args(a):
    H, W = parse_hw(a.input_size)
    return dict(backbone=a.backbone, input_size=[H, W], flow_steps=a.flow_steps,
                affine_clamp=a.clamp, affine_subnet_channels_ratio=a.ratio,
                permute_soft=a.permute_soft)


def outputs_dict(res, pred_score_1d=True):
    out = {}
    for k, zk in enumerate(res["z"]):
        out["z.%d" % k] = zk.contiguous().numpy()
    out["log_jac_det"] = res["log_jac_det"].numpy()
    out["anomaly_map"] = res["anomaly_map"].contiguous().numpy()
    ps = res["pred_score"]
    out["pred_score"] = (ps.reshape(-1) if pred_score_1d else ps).contiguous().numpy()
    for k, f in enumerate(res["features"]):
        out["features.%d" % k] = f.contiguous().numpy()
    return out


def cmd_make_model(a):
    t, mc = make_model_tensors(cfg_from_args(a), a.seed, a.formula_backbone)
    stio.save(t, {"config": json.dumps(mc), "format": "pt"}, a.out)
    print("wrote %s (%d tensors, %d elements)" % (a.out, len(t), sum(v.size for v in t.values())))


def cmd_run(a):
    model, _, _ = load_model(a.model)
    inp, _ = stio.load(a.input)
    img = torch.from_numpy(inp["image"]).float()
    res = model.forward(img)
    stio.save(outputs_dict(res), {"producer": "tools/uflow_ref.py run"}, a.out)
    print("wrote %s" % a.out)


def cmd_make_fixture(a):
    os.makedirs(a.out_dir, exist_ok=True)
    cfg = cfg_from_args(a)
    t, mc = make_model_tensors(cfg, a.seed, a.formula_backbone)
    meta = {"config": json.dumps(mc), "format": "pt"}
    H, W = parse_hw(a.input_size)
    rng = np.random.default_rng(a.seed + 1000003)
    img = rng.standard_normal((a.batch, 3, H, W)).astype(np.float32)
    if a.omit_backbone:
        if not a.formula_backbone:
            sys.exit("--omit-backbone requires --formula-backbone")
        flow_t = {k: v for k, v in t.items() if not k.startswith(BB_PREFIX)}
        meta["backbone_omitted"] = "formula (see tools/uflow_ref.py docstring)"
        mpath = os.path.join(a.out_dir, "model_flow.safetensors")
        stio.save(flow_t, meta, mpath)
        # self-check: reload without backbone, regenerate the formula backbone, compare
        t2, meta2 = stio.load(mpath)
        bb = gen_backbone(mc["backbone"], None, True)
        model = UflowRef(dict(bb, **t2), json.loads(meta2["config"]))
    else:
        mpath = os.path.join(a.out_dir, "model.safetensors")
        stio.save(t, meta, mpath)
        model = UflowRef(t, mc)
    stio.save({"image": img}, {"seed": str(a.seed + 1000003)},
              os.path.join(a.out_dir, "input.safetensors"))
    res = model.forward(torch.from_numpy(img))
    if a.omit_backbone:
        res_full = UflowRef(t, mc).forward(torch.from_numpy(img))
        for k, v in outputs_dict(res_full).items():
            assert np.array_equal(v, outputs_dict(res)[k]), "formula backbone round-trip " + k
    out = outputs_dict(res)
    stio.save(out, {"config": json.dumps(mc), "producer": "tools/uflow_ref.py make-fixture"},
              os.path.join(a.out_dir, "expected.safetensors"))
    tot = 0
    for fn in sorted(os.listdir(a.out_dir)):
        sz = os.path.getsize(os.path.join(a.out_dir, fn))
        tot += sz
        print("  %-28s %10d bytes" % (fn, sz))
    print("total %d bytes; max|z| %s; ljd %s; pred_score %s" % (
        tot, [float(np.abs(out["z.%d" % k]).max()) for k in range(len(res["z"]))],
        out["log_jac_det"].tolist(), out["pred_score"].tolist()))


def _maxabs(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def check_one(model, exp, label, with_nodes):
    img = torch.from_numpy(exp["input"]).float()
    nodes = {} if with_nodes else None
    res = model.forward(img, nodes)
    ok = True
    rows = []

    def cmp(name, got, tol, rel=False):
        nonlocal ok
        ref = exp[name]
        got = np.asarray(got)
        if got.size != ref.size:
            rows.append("%-28s SIZE MISMATCH %s vs %s" % (name, got.shape, ref.shape))
            ok = False
            return
        got = got.reshape(ref.shape)
        err = _maxabs(got, ref)
        if rel:
            err = float(np.max(np.abs(got.astype(np.float64) - ref) / np.abs(ref.astype(np.float64))))
        good = err <= tol
        ok = ok and good
        rows.append("%-28s %s err %.3e  (tol %.1e)%s" % (
            name, "rel" if rel else "max abs", err, tol, "" if good else "  FAIL"))

    def ztol(ref):
        return 1e-3 * max(1.0, float(np.max(np.abs(ref))))

    for k, f in enumerate(res["backbone_raw"]):
        if "backbone_raw.%d" % k in exp:
            cmp("backbone_raw.%d" % k, f.numpy(), ztol(exp["backbone_raw.%d" % k]))
    for k, f in enumerate(res["features"]):
        cmp("features.%d" % k, f.numpy(), ztol(exp["features.%d" % k]))
    for k, zk in enumerate(res["z"]):
        cmp("z.%d" % k, zk.numpy(), ztol(exp["z.%d" % k]))
    if with_nodes:
        names = [k for k in exp if k.startswith("node.")]
        for n in names:
            if n not in nodes:
                rows.append("%-28s MISSING in reference" % n)
                ok = False
                continue
            cmp(n, nodes[n].numpy(), ztol(exp[n]))
        # per-node Jacobians: informative, relative to max(1,|ref|)
        for n in [k for k in exp if k.startswith("node_jac.")]:
            ref = exp[n].astype(np.float64)
            err = float(np.max(np.abs(nodes[n].numpy() - ref) / np.maximum(1.0, np.abs(ref))))
            good = err <= 1e-4
            ok = ok and good
            rows.append("%-28s rel err %.3e  (tol 1.0e-04)%s" % (n, err, "" if good else "  FAIL"))
    cmp("log_jac_det", res["log_jac_det"].numpy(), 1e-4, rel=True)
    cmp("anomaly_map", res["anomaly_map"].numpy(), 1e-4)
    cmp("pred_score", res["pred_score"].numpy(), 1e-4)
    print("== %s (batch %d)" % (label, img.shape[0]))
    for r in rows:
        print("  " + r)
    print("  ljd ref %s got %s" % (exp["log_jac_det"].tolist(), res["log_jac_det"].tolist()))
    return ok


def cmd_check(a):
    if a.threads <= 0:
        # the golden files were produced with 2 intra-op threads; with 2 threads this
        # reference reproduces every tensor bit-exactly (1 thread: ~1e-5 differences)
        torch.set_num_threads(2)
    model, cfg, _ = load_model(os.path.join(a.golden, "resnet18_256_s4.safetensors"))
    ok = True
    for fn, nodes in (("expected_random.safetensors", True), ("expected_images.safetensors", False)):
        exp, _ = stio.load(os.path.join(a.golden, fn))
        ok = check_one(model, exp, fn, nodes) and ok
    print("CHECK %s" % ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


def cmd_sanity(a):
    """Self-consistency of the flow for a model config (no anomalib needed):
    1. hard permutation: the 1x1 conv equals a channel gather (bit-exact);
    2. inverse(forward(features)) == features;
    3. log_jac_det equals log|det| of the autograd Jacobian of the flow (float64, at a
       tiny input size with the same options)."""
    torch.manual_seed(0)
    cfg = cfg_from_args(a)
    ok = True
    t, mc = make_model_tensors(cfg, a.seed, a.formula_backbone)
    model = UflowRef(t, mc)
    H, W = model.cfg["H"], model.cfg["W"]
    img = torch.from_numpy(np.random.default_rng(a.seed + 7).standard_normal(
        (a.batch, 3, H, W)).astype(np.float32))
    with torch.no_grad():
        _, feats = model.features(img)
        z, ljd = model.flow(feats)
        if not model.cfg["permute_soft"]:
            worst = 0.0
            for n, p in model.blocks.items():
                w = p["w_perm"][:, :, 0, 0]
                idx = torch.argmax(w, dim=1)
                x = torch.randn(2, w.shape[0], 3, 5)
                worst = max(worst, float((F.conv2d(x, p["w_perm"]) - x[:, idx]).abs().max()))
            print("hard perm: conv vs gather max diff %.3e" % worst)
            ok = ok and worst == 0.0
        rec = model.flow_inverse(z)
        err = max(float((r - f).abs().max()) for r, f in zip(rec, feats))
        print("inverse(forward(features)) max abs err %.3e (max|z| %.2f)"
              % (err, max(float(zk.abs().max()) for zk in z)))
        ok = ok and err < 1e-3
    # log-det vs autograd at a tiny size (16 x 32)
    tcfg = dict(cfg, input_size=[16, 32])
    t2, mc2 = make_model_tensors(tcfg, a.seed, a.formula_backbone)
    tiny = UflowRef(t2, mc2)
    tiny.flow_to(torch.float64)
    with torch.no_grad():
        timg = torch.from_numpy(np.random.default_rng(a.seed + 9).standard_normal(
            (1, 3, 16, 32)).astype(np.float32))
        _, tf = tiny.features(timg)
    shapes = [f.shape[1:] for f in tf]
    sizes = [int(np.prod(s)) for s in shapes]
    x0 = torch.cat([f.double().reshape(-1) for f in tf])

    def fn(x):
        fs = [c.reshape(1, *s) for c, s in zip(torch.split(x, sizes), shapes)]
        zz, _ = tiny.flow(fs)
        return torch.cat([zk.reshape(-1) for zk in zz])

    jac = torch.autograd.functional.jacobian(fn, x0, vectorize=True)
    sign, logabs = torch.linalg.slogdet(jac)
    with torch.no_grad():
        _, lj = tiny.flow([f.double() for f in tf])
    # U-Flow's ljd ignores the permutation (|det| = 1 for a permutation / rotation); a
    # float32-rounded rotation is off by ~1e-8, so add that exact term for the comparison
    wdet = 0.0
    for st in tiny.stages:
        for n in st["blocks"]:
            w = tiny.blocks[n]["w_perm"][:, :, 0, 0]
            wdet += st["h"] * st["w"] * float(torch.linalg.slogdet(w)[1])
    rel = abs(float(lj[0]) + wdet - float(logabs)) / max(1.0, abs(float(logabs)))
    print("log-det (16x32, %d dims): flow ljd %.6f (+ perm %.2e), autograd log|det J| %.6f, "
          "sign %+d, rel err %.2e" % (x0.numel(), float(lj[0]), wdet, float(logabs), int(sign), rel))
    ok = ok and rel < 1e-9
    print("SANITY %s" % ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


def cmd_check_fixture(a):
    """Re-run a make-fixture directory and compare with its expected.safetensors."""
    d = a.dir
    if os.path.exists(os.path.join(d, "model.safetensors")):
        model, _, _ = load_model(os.path.join(d, "model.safetensors"))
    else:
        t, meta = stio.load(os.path.join(d, "model_flow.safetensors"))
        cfg = json.loads(meta["config"])
        model = UflowRef(dict(gen_backbone(cfg["backbone"], None, True), **t), cfg)
    inp, _ = stio.load(os.path.join(d, "input.safetensors"))
    exp, _ = stio.load(os.path.join(d, "expected.safetensors"))
    out = outputs_dict(model.forward(torch.from_numpy(inp["image"])))
    worst = 0.0
    for k in exp:
        e = _maxabs(out[k], exp[k])
        worst = max(worst, e)
        print("  %-14s max abs diff %.3e" % (k, e))
    print("fixture %s: worst %.3e" % (d, worst))
    return 0 if worst == 0.0 else 1


def cmd_check_cait(a):
    """The CaiT reference above against timm's own outputs (tests/golden/cait)."""
    w, _ = stio.load(os.path.join(a.dir, "cait_s24_first3_weights.safetensors"))
    exp, _ = stio.load(os.path.join(a.dir, "cait_s24_first3_expected.safetensors"))
    ref = CaitRef(lambda k: torch.from_numpy(np.array(w[k], order="C")).float(), 384, 8, 3, 14)
    trace = {}
    with torch.no_grad():
        img224 = resize_224(torch.from_numpy(exp["image_448"]))
        trace["image_224"] = img224
        fmap = ref.forward(torch.from_numpy(exp["image_224"]), trace)
        trace["features_after_3_blocks"] = fmap
        # each block alone from timm's input to it
        alone = {}
        prev = "tokens_in"
        for i, p in enumerate(ref.blocks):
            alone["block%d_out" % i] = ref.block(torch.from_numpy(exp[prev]), p)
            prev = "block%d_out" % i
    worst = 0.0
    for k in ["image_224", "patch_embed_out", "tokens_in", "block0_out", "block1_out",
              "block2_out", "norm_out", "features_after_3_blocks"]:
        e = _maxabs(trace[k].numpy(), exp[k])
        worst = max(worst, e)
        extra = ("   (alone %.3e)" % _maxabs(alone[k].numpy(), exp[k])) if k in alone else ""
        print("  %-26s max abs err %.3e%s" % (k, e, extra))
    ok = worst <= 1e-4
    print("CHECK-CAIT %s (worst %.3e, tol 1e-4)" % ("PASSED" if ok else "FAILED", worst))
    return 0 if ok else 1


SM_GAMMA = 0x9E3779B97F4A7C15


def formula_input(shape, seed):
    """The input of the mcait test, also computed by tests/test_cait.c: element i (C order)
    = u * 4 - 2 with u = (splitmix64_i >> 40) / 2^24, where splitmix64_i is the i-th output
    (i = 0, 1, ...) of splitmix64 started at state `seed`. Exact in float32."""
    n = int(np.prod(shape))
    m = (1 << 64) - 1
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(SM_GAMMA)))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9 & m)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB & m)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / 16777216.0
    return (u * 4.0 - 2.0).astype(np.float32).reshape(shape)


MCAIT_INPUT_SEED = 20251128
MCAIT_Z0_CHANNELS = 32
MCAIT_F0_CHANNELS = 32
MCAIT_F1_CHANNELS = 64


def cmd_mcait_expected(a):
    """Run an mcait model file on the formula input; keep a small subset of the outputs."""
    torch.set_num_threads(a.threads if a.threads > 0 else 2)
    model, cfg, meta = load_model(a.model)
    if model.cfg["backbone"] != "mcait":
        sys.exit("not an mcait model")
    img = torch.from_numpy(formula_input((1, 3, 448, 448), MCAIT_INPUT_SEED))
    res = model.forward(img)
    z0, z1 = res["z"][0].numpy(), res["z"][1].numpy()
    f0, f1 = res["features"][0].numpy(), res["features"][1].numpy()
    out = {
        "anomaly_map": res["anomaly_map"].contiguous().numpy(),
        "pred_score": res["pred_score"].reshape(-1).numpy(),
        "log_jac_det": res["log_jac_det"].numpy(),
        "z.1": np.ascontiguousarray(z1),
        "z.0.first": np.ascontiguousarray(z0[:, :MCAIT_Z0_CHANNELS]),
        "z.0.meansq": (z0.astype(np.float64) ** 2).mean(axis=(2, 3)).astype(np.float32),
        "features.0.first": np.ascontiguousarray(f0[:, :MCAIT_F0_CHANNELS]),
        "features.0.mean": f0.astype(np.float64).mean(axis=(2, 3)).astype(np.float32),
        "features.1.first": np.ascontiguousarray(f1[:, :MCAIT_F1_CHANNELS]),
        "features.1.mean": f1.astype(np.float64).mean(axis=(2, 3)).astype(np.float32),
    }
    info = {"producer": "tools/uflow_ref.py mcait-expected", "config": meta["config"],
            "input": "formula_input((1,3,448,448), seed=%d)" % MCAIT_INPUT_SEED,
            "model_sha256_16": a.sha or ""}
    stio.save(out, info, a.out)
    print("wrote %s (%d bytes); pred_score %s ljd %s max|z| %.3f/%.3f map range [%.4f, %.4f]" % (
        a.out, os.path.getsize(a.out), out["pred_score"].tolist(), out["log_jac_det"].tolist(),
        float(np.abs(z0).max()), float(np.abs(z1).max()), float(out["anomaly_map"].min()),
        float(out["anomaly_map"].max())))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check")
    p.add_argument("--golden", required=True)
    p = sub.add_parser("make-model")
    add_model_opts(p)
    p.add_argument("--out", required=True)
    p = sub.add_parser("run")
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("make-fixture")
    add_model_opts(p)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--omit-backbone", action="store_true")
    p = sub.add_parser("sanity")
    add_model_opts(p)
    p.add_argument("--batch", type=int, default=2)
    p = sub.add_parser("check-fixture")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("check-cait")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("mcait-expected")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--sha", help="the model's version (uflow inspect) to record")
    p = sub.add_parser("export-onnx")
    import uflow_onnx   # noqa: E402  (here, not at the top: it imports this file itself)
    uflow_onnx.add_args(p)
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    fn = {"check": cmd_check, "make-model": cmd_make_model, "run": cmd_run,
          "make-fixture": cmd_make_fixture, "check-fixture": cmd_check_fixture, "sanity": cmd_sanity,
          "check-cait": cmd_check_cait, "mcait-expected": cmd_mcait_expected,
          "export-onnx": uflow_onnx.run}[a.cmd]
    return fn(a) or 0


if __name__ == "__main__":
    sys.exit(main())
