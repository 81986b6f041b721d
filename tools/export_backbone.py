#!/usr/bin/python3
"""Write pretrained (or seeded random) U-Flow backbone weights as one safetensors file with
torchvision/timm key names, for `uflow create|train --backbone-weights FILE`.

Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision, numpy); timm is needed
only to pull pretrained mcait (CaiT) weights, or ResNet weights with `--hub timm`.

    # on a machine with internet access (torchvision downloads into ~/.cache/torch/hub):
    /usr/bin/python3 tools/export_backbone.py --arch resnet18 --pretrained --out r18.safetensors
    /usr/bin/python3 tools/export_backbone.py --arch wide_resnet50_2 --pretrained --out wrn50.safetensors
    /usr/bin/python3 tools/export_backbone.py --arch mcait --pretrained --out mcait.safetensors    # needs timm
    # then, anywhere:
    uflow create --backbone resnet18 --backbone-weights r18.safetensors --out model.safetensors

    # offline, from checkpoint files copied over (no timm needed, also for mcait):
    export_backbone.py --arch resnet18 --state-dict resnet18-f37072fd.pth --out r18.safetensors
    export_backbone.py --arch mcait --state-dict cait_m48_448.pth --state-dict cait_s24_224.pth \\
                       --out mcait.safetensors
    # tests: seeded random weights
    export_backbone.py --arch resnet18 --random-init --seed 3 --out r18-random.safetensors

Output
  Tensors (F32; BatchNorm num_batches_tracked I64, 0-d), in state_dict order:
    resnet18 / wide_resnet50_2: torchvision's (= timm's) keys of the stem and layer1..layer3,
      e.g. `conv1.weight`, `bn1.running_var`, `layer2.0.downsample.1.weight`
      (layer4 and fc are dropped; --keep-all keeps them, uflow ignores them);
    mcait: `extractor1.<timm cait_m48_448 key>` and `extractor2.<timm cait_s24_224 key>`, the
      complete CaiTs (cls_token, pos_embed, patch_embed.proj.*, blocks.N.*, blocks_token_only.*,
      norm.*, head.*) as anomalib's CaitFeatureExtractor holds them.
  __metadata__: {"format": "pt", "uflow_backbone": ARCH, "source": "...", "producer": ...},
    source e.g. "torchvision resnet18 IMAGENET1K_V1", "timm cait_m48_448.fb_dist_in1k +
    cait_s24_224.fb_dist_in1k (timm 0.9.2)", "state dict r18.pth (sha256 0123...)",
    "random init, seed 3". `uflow create` copies it, with the file's name and SHA-256, into the
    model config as "backbone_weights".

Which weights? anomalib builds the ResNet backbones with timm
(`timm.create_model(arch, pretrained=True, features_only=True)`) and the CaiTs with timm too.
To start from exactly the weights an anomalib run would use, export with the same timm version
(`--hub timm`, or `--state-dict` the checkpoint timm downloaded); torchvision's ImageNet weights
(the default, `--weights IMAGENET1K_V1|IMAGENET1K_V2|DEFAULT`) are a fine start as well, but
not the same numbers: recent timm defaults to its own resnet18.a1_in1k / wide_resnet50_2.racm_in1k
weights.

--state-dict FILE: a torch checkpoint (.pth/.pt/.ckpt; a plain state dict, or a dict holding one
under "state_dict"/"model"/"state_dict_ema") or a .safetensors file. Prefixes "module.",
"model.", and anomalib's "feature_extractor.feature_extractor." / "feature_extractor." are
stripped (so the backbone part of an anomalib U-Flow checkpoint works too; its other tensors
are ignored). Every needed tensor must be present with exactly the expected shape; other keys
than layer4/fc are an error (a resnet34 file is not resnet18 weights). mcait: two files (the
m48 one and the s24 one, told apart by their shapes) or one with extractor1./extractor2. keys.

--random-init (tests): resnets: torchvision's default init under torch.manual_seed(SEED), then
every BatchNorm's weight ~ U(0.5, 1.5), bias ~ N(0, 0.2), running_mean ~ N(0, 0.2),
running_var ~ U(0.5, 2) (so that the statistics matter); mcait: numpy default_rng(SEED),
every tensor N(0, 0.02), LayerNorm weights 1 + N(0, 0.02), LayerScale gammas U(0.05, 0.25).
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np

RESNETS = ("resnet18", "wide_resnet50_2")
ARCHS = RESNETS + ("mcait",)
# (timm name, embed dim, heads, depth, patch grid side) of anomalib's two CaiTs
CAITS = (("cait_m48_448", 768, 16, 48, 28), ("cait_s24_224", 384, 8, 24, 14))
PRODUCER = "tools/export_backbone.py"


class ExportError(Exception):
    pass


# ---- expected keys ----------------------------------------------------------------------

def cait_keys(D, H, depth, grid):
    """(key, shape) of a timm CaiT state_dict (cait.py: Cait, LayerScaleBlock with
    TalkingHeadAttn, LayerScaleBlockClassAttn with ClassAttn), in state_dict order."""
    out = [("cls_token", (1, 1, D)), ("pos_embed", (1, grid * grid, D)),
           ("patch_embed.proj.weight", (D, 3, 16, 16)), ("patch_embed.proj.bias", (D,))]

    def lin(p, o, i):
        return [(p + ".weight", (o, i)), (p + ".bias", (o,))]

    def norm(p):
        return [(p + ".weight", (D,)), (p + ".bias", (D,))]

    for i in range(depth):
        b = "blocks.%d." % i
        out += [(b + "gamma_1", (D,)), (b + "gamma_2", (D,))] + norm(b + "norm1")
        out += lin(b + "attn.qkv", 3 * D, D) + lin(b + "attn.proj", D, D)
        out += lin(b + "attn.proj_l", H, H) + lin(b + "attn.proj_w", H, H)
        out += norm(b + "norm2") + lin(b + "mlp.fc1", 4 * D, D) + lin(b + "mlp.fc2", D, 4 * D)
    for i in range(2):
        b = "blocks_token_only.%d." % i
        out += [(b + "gamma_1", (D,)), (b + "gamma_2", (D,))] + norm(b + "norm1")
        for n in ("q", "k", "v", "proj"):
            out += lin(b + "attn." + n, D, D)
        out += norm(b + "norm2") + lin(b + "mlp.fc1", 4 * D, D) + lin(b + "mlp.fc2", D, 4 * D)
    out += norm("norm") + lin("head", 1000, D)
    return out


def mcait_keys():
    out = []
    for j, (_, D, H, depth, grid) in enumerate(CAITS):
        out += [("extractor%d.%s" % (j + 1, k), s) for k, s in cait_keys(D, H, depth, grid)]
    return out


def torchvision_model(arch, weights=None):
    import torchvision
    ctor = getattr(torchvision.models, arch)
    try:
        return ctor(weights=weights)
    except TypeError:  # torchvision < 0.13
        return ctor(pretrained=weights is not None)


def resnet_used(key):
    return not (key.startswith("layer4.") or key.startswith("fc."))


def resnet_keys(arch):
    """(key, shape, is_int) of the whole torchvision state_dict, in order."""
    sd = torchvision_model(arch).state_dict()
    return [(k, tuple(v.shape), not v.is_floating_point()) for k, v in sd.items()]


# ---- reading state dicts ----------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


_ST_DT = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?", "BF16": "<u2"}


def read_safetensors(path):
    """dict key -> numpy array (memory-mapped; BF16 converted to float32)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ExportError("%s: not a safetensors file (too short)" % path)
        (n,) = struct.unpack("<Q", head)
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except ValueError as e:
            raise ExportError("%s: not a safetensors file (%s)" % (path, e))
    header.pop("__metadata__", None)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for k, info in header.items():
        if info["dtype"] not in _ST_DT:
            raise ExportError("%s: tensor %s has unsupported dtype %s" % (path, k, info["dtype"]))
        b, e = info["data_offsets"]
        a = mm[8 + n + b:8 + n + e].view(_ST_DT[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[k] = a
    return out


def to_numpy(v):
    import torch
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        if v.dtype in (torch.bfloat16, torch.float16):
            v = v.float()
        return v.contiguous().numpy()
    return np.asarray(v)


def read_state_dict(path, allow_pickle):
    """A flat dict key -> numpy array from a checkpoint or safetensors file."""
    if not os.path.isfile(path):
        raise ExportError("%s: no such file" % path)
    with open(path, "rb") as f:
        magic = f.read(16)
    if path.endswith(".safetensors") or (len(magic) >= 9 and magic[8:9] == b"{"):
        return read_safetensors(path)
    import torch
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
        except TypeError:  # torch < 1.13: no weights_only
            obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - report whatever torch says
        hint = "" if allow_pickle else " (a pickled module or an unusual checkpoint? --allow-pickle " \
                                        "loads it with full unpickling: only for files you trust)"
        raise ExportError("%s: cannot load: %s%s" % (path, str(e).splitlines()[0], hint))
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    for wrap in ("state_dict", "model", "state_dict_ema", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrap), dict):
            obj = obj[wrap]
            break
    if not isinstance(obj, dict):
        raise ExportError("%s: holds a %s, not a state dict" % (path, type(obj).__name__))
    out = {}
    for k, v in obj.items():
        if hasattr(v, "shape"):
            out[str(k)] = to_numpy(v)
    if not out:
        raise ExportError("%s: no tensors in it" % path)
    return out


def strip_prefixes(sd, backbone_prefix):
    """Remove DataParallel/Lightning prefixes and anomalib's backbone prefix; when the anomalib
    prefix is present, keep only the keys under it."""
    for p in ("module.", "model."):
        if all(k.startswith(p) for k in sd):
            sd = {k[len(p):]: v for k, v in sd.items()}
    if any(k.startswith(backbone_prefix) for k in sd):
        sd = {k[len(backbone_prefix):]: v for k, v in sd.items() if k.startswith(backbone_prefix)}
    return sd


def check_against(sd, expected, what, extra_ok=lambda k: False, optional=lambda k: False):
    """Every expected (key, shape) present with that shape; nothing unexpected."""
    exp = dict(expected)
    missing = [k for k in exp if k not in sd and not optional(k)]
    if missing:
        raise ExportError("%s: missing %d tensor(s): %s%s" % (
            what, len(missing), ", ".join(missing[:5]), ", ..." if len(missing) > 5 else ""))
    for k, shape in expected:
        if k in sd and tuple(sd[k].shape) != tuple(shape) and not (shape == () and sd[k].size == 1):
            raise ExportError("%s: tensor %s has shape %s, expected %s"
                              % (what, k, list(sd[k].shape), list(shape)))
    unexpected = [k for k in sd if k not in exp and not extra_ok(k)]
    if unexpected:
        raise ExportError("%s: unexpected tensor(s) %s%s — not this architecture's state dict?" % (
            what, ", ".join(unexpected[:5]), ", ..." if len(unexpected) > 5 else ""))


# ---- sources ----------------------------------------------------------------------------

def resnet_random(arch, seed):
    import torch
    torch.manual_seed(seed)
    m = torchvision_model(arch)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                C = mod.num_features
                mod.weight.copy_(0.5 + torch.rand(C, generator=g))
                mod.bias.copy_(0.2 * torch.randn(C, generator=g))
                mod.running_mean.copy_(0.2 * torch.randn(C, generator=g))
                mod.running_var.copy_(0.5 + 1.5 * torch.rand(C, generator=g))
    return {k: to_numpy(v) for k, v in m.state_dict().items()}, "random init, seed %d" % seed


def resnet_pretrained(arch, hub, weights_name):
    if hub == "timm":
        timm = import_timm("--hub timm")
        try:
            m = timm.create_model(arch, pretrained=True)
        except Exception as e:  # noqa: BLE001
            raise ExportError("timm could not load pretrained %s: %s (no network? export on a machine "
                              "with internet access, or pass --state-dict FILE)" % (arch, e))
        return {k: to_numpy(v) for k, v in m.state_dict().items()}, \
            "timm %s (timm %s)" % (pretrained_tag(m, arch), timm.__version__)
    import torchvision
    try:
        enum = torchvision.models.get_model_weights(arch)
    except AttributeError:
        raise ExportError("torchvision %s is too old for --pretrained (needs 0.14); download the "
                          "checkpoint and pass --state-dict FILE" % torchvision.__version__)
    try:
        w = enum.DEFAULT if weights_name == "DEFAULT" else enum[weights_name]
    except KeyError:
        raise ExportError("torchvision has no %s weights '%s' (choose from DEFAULT, %s)"
                          % (arch, weights_name, ", ".join(e.name for e in enum)))
    try:
        m = torchvision_model(arch, w)
    except Exception as e:  # noqa: BLE001 - URLError, HTTPError, SSL errors...
        raise ExportError("cannot get torchvision's %s %s weights from %s: %s\n(no network? run this on "
                          "a machine with internet access, or download the file there and pass "
                          "--state-dict FILE)" % (arch, w.name, w.url, e))
    return {k: to_numpy(v) for k, v in m.state_dict().items()}, "torchvision %s %s" % (arch, w.name)


def resnet_from_files(arch, files, allow_pickle):
    if len(files) != 1:
        raise ExportError("--arch %s takes one --state-dict file" % arch)
    sd = strip_prefixes(read_state_dict(files[0], allow_pickle), "feature_extractor.feature_extractor.")
    return sd, "state dict %s (sha256 %s)" % (os.path.basename(files[0]), sha256_file(files[0])[:16])


def import_timm(why):
    try:
        import timm
    except ImportError:
        raise ExportError("%s needs timm, which is not installed (pip install timm, on a machine "
                          "with internet access; or download the checkpoints and pass "
                          "--state-dict FILE, which works without timm)" % why)
    return timm


def pretrained_tag(m, name):
    cfg = getattr(m, "pretrained_cfg", None) or getattr(m, "default_cfg", None) or {}
    tag = cfg.get("tag") if isinstance(cfg, dict) else None
    return "%s.%s" % (name, tag) if tag else name


def mcait_pretrained():
    timm = import_timm("--arch mcait --pretrained")
    sd, tags = {}, []
    for j, (name, *_rest) in enumerate(CAITS):
        try:
            m = timm.create_model(name, pretrained=True)
        except Exception as e:  # noqa: BLE001
            raise ExportError("timm could not load pretrained %s: %s (no network? export on a machine "
                              "with internet access, or pass --state-dict M48 --state-dict S24)" % (name, e))
        sd.update({"extractor%d.%s" % (j + 1, k): to_numpy(v) for k, v in m.state_dict().items()})
        tags.append(pretrained_tag(m, name))
        del m
    return sd, "timm %s + %s (timm %s)" % (tags[0], tags[1], timm.__version__)


def mcait_from_files(files, allow_pickle):
    if len(files) == 1:
        sd = strip_prefixes(read_state_dict(files[0], allow_pickle), "feature_extractor.")
        if not any(k.startswith("extractor1.") for k in sd):
            raise ExportError("%s: one mcait file must hold extractor1.* and extractor2.* keys; or pass "
                              "the cait_m48_448 and cait_s24_224 state dicts as two --state-dict files"
                              % files[0])
        src = "state dict %s (sha256 %s)" % (os.path.basename(files[0]), sha256_file(files[0])[:16])
        return sd, src
    if len(files) != 2:
        raise ExportError("--arch mcait takes one or two --state-dict files")
    parts = {}
    for path in files:
        sd = strip_prefixes(read_state_dict(path, allow_pickle), "")
        pe = sd.get("pos_embed")
        D = pe.shape[-1] if pe is not None and pe.ndim == 3 else None
        j = {768: 1, 384: 2}.get(D)
        if j is None:
            raise ExportError("%s: not a cait_m48_448 or cait_s24_224 state dict (pos_embed %s)"
                              % (path, None if pe is None else list(pe.shape)))
        if j in parts:
            raise ExportError("both --state-dict files hold %s weights" % CAITS[j - 1][0])
        parts[j] = (path, sd)
    sd = {}
    for j in (1, 2):
        sd.update({"extractor%d.%s" % (j, k): v for k, v in parts[j][1].items()})
    src = " + ".join("%s %s (sha256 %s)" % (CAITS[j - 1][0], os.path.basename(parts[j][0]),
                                           sha256_file(parts[j][0])[:16]) for j in (1, 2))
    return sd, "state dicts " + src


def mcait_random(seed):
    rng = np.random.default_rng(seed)
    sd = {}
    for k, shape in mcait_keys():
        leaf = k.rsplit(".", 1)[-1]
        if leaf in ("gamma_1", "gamma_2"):
            a = rng.uniform(0.05, 0.25, size=shape)
        else:
            a = rng.standard_normal(size=shape, dtype=np.float32)
            a *= np.float32(0.02)
            if ".norm" in k and leaf == "weight":
                a += np.float32(1)
        sd[k] = np.asarray(a, dtype=np.float32)
    return sd, "random init, seed %d" % seed


# ---- writing ----------------------------------------------------------------------------

def write_safetensors(path, items, metadata):
    """items: list of (key, array), written in that order; F32 except integers (I64)."""
    header = {"__metadata__": metadata}
    arrays, off = [], 0
    for k, a in items:
        a = np.asarray(a, dtype=np.int64 if np.issubdtype(np.asarray(a).dtype, np.integer) else np.float32)
        if not a.flags.c_contiguous:   # (np.ascontiguousarray would make 0-d arrays 1-d)
            a = a.copy(order="C")
        if a.dtype == np.float32 and not np.isfinite(a).all():
            raise ExportError("tensor %s has non-finite values" % k)
        header[k] = {"dtype": "I64" if a.dtype == np.int64 else "F32", "shape": list(a.shape),
                     "data_offsets": [off, off + a.nbytes]}
        arrays.append(a)
        off += a.nbytes
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hb)))
            f.write(hb)
            for a in arrays:
                f.write(memoryview(a.reshape(-1)).cast("B"))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return off


def export(a):
    if a.arch in RESNETS:
        if a.random_init:
            sd, source = resnet_random(a.arch, a.seed)
        elif a.pretrained:
            sd, source = resnet_pretrained(a.arch, a.hub, a.weights)
        else:
            sd, source = resnet_from_files(a.arch, a.state_dict, a.allow_pickle)
        expected = [(k, s) for k, s, _ in resnet_keys(a.arch)]
        check_against(sd, [(k, s) for k, s in expected if resnet_used(k)], "%s weights" % a.arch,
                      extra_ok=lambda k: not resnet_used(k),
                      optional=lambda k: k.endswith("num_batches_tracked"))
        items = []
        for k, shape in expected:
            if not (a.keep_all or resnet_used(k)):
                continue
            if k in sd:
                items.append((k, np.asarray(sd[k]).reshape(shape)))
            elif k.endswith("num_batches_tracked"):
                items.append((k, np.zeros((), np.int64)))
            # with --keep-all, layer4/fc tensors the source lacks are simply not written
    else:
        if a.keep_all:
            raise ExportError("--keep-all is for the resnets (mcait files always hold whole CaiTs)")
        if a.random_init:
            sd, source = mcait_random(a.seed)
        elif a.pretrained:
            sd, source = mcait_pretrained()
        else:
            sd, source = mcait_from_files(a.state_dict, a.allow_pickle)
        expected = mcait_keys()
        check_against(sd, expected, "mcait weights")
        items = [(k, sd[k]) for k, _ in expected]
    meta = {"format": "pt", "uflow_backbone": a.arch, "source": source, "producer": PRODUCER}
    nbytes = write_safetensors(a.out, items, meta)
    return "wrote %s: %s, %d tensors, %.1f MB; source: %s" % (a.out, a.arch, len(items), nbytes / 1e6,
                                                           source)


def main(argv=None):
    doc = __doc__.split("\n\nOutput")[0]
    ap = argparse.ArgumentParser(prog="export_backbone.py", description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Output format and sources: see the module docstring "
                                        "(pydoc3 tools/export_backbone.py) or docs/model-format.md.")
    ap.add_argument("--arch", required=True, choices=ARCHS, help="the U-Flow backbone")
    ap.add_argument("--out", required=True, help="the safetensors file to write")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pretrained", action="store_true",
                     help="download ImageNet weights (torchvision; timm for mcait or --hub timm)")
    src.add_argument("--state-dict", action="append", metavar="FILE",
                     help="a local checkpoint / state dict (.pth, .ckpt, .safetensors); mcait: the "
                          "m48 and the s24 file, or one file with extractor1./extractor2. keys")
    src.add_argument("--random-init", action="store_true", help="seeded random weights (tests)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random-init (default 0)")
    ap.add_argument("--hub", choices=("torchvision", "timm"), default="torchvision",
                    help="where --pretrained ResNet weights come from (default torchvision)")
    ap.add_argument("--weights", default="DEFAULT",
                    help="torchvision weights enum name, e.g. IMAGENET1K_V1 (default DEFAULT)")
    ap.add_argument("--keep-all", action="store_true",
                    help="resnets: keep layer4 and fc (uflow ignores them)")
    ap.add_argument("--allow-pickle", action="store_true",
                    help="load --state-dict files with full unpickling (trusted files only)")
    a = ap.parse_args(argv)
    if a.seed != 0 and not a.random_init:
        ap.error("--seed goes with --random-init")
    try:
        print(export(a))
    except ExportError as e:
        print("export_backbone.py: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
