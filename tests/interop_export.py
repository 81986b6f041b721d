"""interop_export.py — the export half of the `interop` test (called by interop_check.py).

import (2.x checkpoint) -> uflow export -> load in torch:
  * torch >= 2: torch.load(weights_only=True). torch 1.13 (Debian's) has that unpickler but
    without BINFLOAT, so no file holding a float (affine_clamp) passes it; there the file is
    loaded by torch.load with a pickle module whose find_class allows exactly the globals of
    torch's weights-only allow-list (torch._weights_only_unpickler._get_allowed_globals) —
    the same rule, every other opcode included;
  * the "model." part load_state_dict(strict=True)s into an nn.Module with UflowModel's
    names: the feature extractor is a real torchvision resnet18 cut after layer3 (timm's
    features_only resnet has the same names), the feature normalisations real LayerNorms,
    the flow a module tree with the reference's parameter names (FrEIA is not installed);
  * tools/uflow_ref.py on the loaded tensors gives `uflow infer`'s output on the model;
  * hyper_parameters, post_processor buffers and pytorch-lightning_version as written;
  * re-import of the export gives the same tensors and config values;
  * export of a missing model fails with exit 1 and leaves nothing.
"""
import io
import json
import os
import pickle

import numpy as np
import torch
import torchvision

import safetensors_io as stio
import uflow_ref


class _Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed = _get_allowed_globals()
        full = "%s.%s" % (module, name)
        if full not in allowed:
            raise pickle.UnpicklingError("global %s is not in torch's weights-only list" % full)
        return allowed[full]


class _RestrictedModule:
    Unpickler = _Restricted
    __name__ = "restricted_pickle"

    @staticmethod
    def load(f, **kw):
        return _Restricted(f, **kw).load()


def load_weights_only(path):
    major = int(torch.__version__.split(".")[0])
    if major >= 2:
        return torch.load(path, weights_only=True), "torch.load(weights_only=True)"
    try:
        return torch.load(path, weights_only=True), "torch.load(weights_only=True)"
    except Exception as e:  # 1.13: "Unsupported operand 71" (BINFLOAT)
        why = str(e).split("WeightsUnpickler error:")[-1].strip()
    return (torch.load(path, pickle_module=_RestrictedModule),
            "torch %s: weights-only allow-list unpickler (weights_only=True: %s)"
            % (torch.__version__, why))


class Keyed(torch.nn.Module):
    pass


def uflow_module(ref_t, cfg):
    m = torch.nn.Module()
    fe = torch.nn.Module()
    r18 = torchvision.models.resnet18()
    del r18.layer4, r18.fc, r18.avgpool
    fe.feature_extractor = r18
    H, W = uflow_ref.parse_hw(cfg["input_size"])
    bb = uflow_ref.BACKBONES["resnet18"]
    fe.feature_normalizations = torch.nn.ModuleList(
        torch.nn.LayerNorm([c, H // s, W // s]) for c, s in zip(bb["channels"], bb["scales"]))
    m.feature_extractor = fe
    m.flow = Keyed()
    for k, v in ref_t.items():
        if not k.startswith("flow."):
            continue
        mod = m
        parts = k.split(".")
        for p in parts[:-1]:
            if not hasattr(mod, p):
                mod.add_module(p, Keyed())
            mod = getattr(mod, p)
        mod.register_parameter(parts[-1], torch.nn.Parameter(torch.zeros(v.shape)))
    return m


def check_export(uflow, tmp, ref_t, ref_model, check, run, compare_outputs, fixture_args):
    import make_ckpt_fixtures as mk
    l2 = os.path.join(tmp, "l2.ckpt")
    m2 = os.path.join(tmp, "l2.safetensors")
    if not os.path.exists(m2):
        mk.cmd_lightning2(fixture_args(l2))
        run([uflow, "import", l2, "--out", m2])
    back = os.path.join(tmp, "back.ckpt")
    r = run([uflow, "export", m2, "--out", back, "--lightning-version", "2.5.1"])
    if not check(r.returncode == 0, "export failed: %s" % r.stderr.strip()):
        return
    ck, how = load_weights_only(back)
    print("export: loaded with %s" % how)
    sd = ck["state_dict"]
    check(ck.get("pytorch-lightning_version") == "2.5.1", "pytorch-lightning_version")
    hp = ck.get("hyper_parameters", {})
    check(hp == {"backbone": "resnet18", "flow_steps": 2, "affine_clamp": 1.5,
                 "affine_subnet_channels_ratio": 0.75, "permute_soft": False},
          "hyper_parameters %r" % hp)
    pp = [float(sd["post_processor." + n]) for n in
          ("_image_threshold", "_pixel_threshold", "image_min", "image_max", "pixel_min", "pixel_max")]
    check(pp == list(mk.POSTPROC), "post_processor buffers %r" % pp)
    model_sd = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    check(sorted(model_sd) == sorted(ref_t), "exported model. keys differ from UflowModel's")
    bad = [k for k, v in ref_t.items() if k in model_sd and
           not np.array_equal(model_sd[k].numpy(), v)]
    check(not bad, "exported tensors differ: %s" % bad[:3])
    mod = uflow_module(ref_t, json.loads(ck["uflow_config"]))
    try:
        mod.load_state_dict(model_sd, strict=True)
        ok = True
    except RuntimeError as e:
        ok = False
        print(str(e)[:2000])
    check(ok, "load_state_dict(strict=True) of the exported model. part")
    # the reference on the tensors torch loaded = uflow infer on the model file
    loaded = {k: v.numpy() for k, v in mod.state_dict().items()}
    ref2 = uflow_ref.UflowRef(loaded, dict(json.loads(ck["uflow_config"])))
    compare_outputs(uflow, m2, ref2, tmp, "export -> torch")
    # and back again
    m3 = os.path.join(tmp, "again.safetensors")
    r = run([uflow, "import", "--quiet", back, "--out", m3])
    if check(r.returncode == 0, "re-import of the export: %s" % r.stderr.strip()):
        a, _ = stio.load(m2)
        b, _ = stio.load(m3)
        check(sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a),
              "re-imported tensors differ")
        c2 = json.loads(stio.load(m2)[1]["config"])
        c3 = json.loads(stio.load(m3)[1]["config"])
        same = [k for k in ("backbone", "input_size", "flow_steps", "affine_clamp",
                            "affine_subnet_channels_ratio", "permute_soft", "image_threshold",
                            "pred_scores_max", "anomaly_maps_min") if c2.get(k) != c3.get(k)]
        check(not same, "re-imported config differs in %s" % same)
    gone = os.path.join(tmp, "nothing.ckpt")
    r = run([uflow, "export", os.path.join(tmp, "missing.safetensors"), "--out", gone], None)
    check(r.returncode == 1 and not os.path.exists(gone) and len(r.stderr.strip().splitlines()) == 1,
          "export of a missing model: rc %d %r" % (r.returncode, r.stderr))
