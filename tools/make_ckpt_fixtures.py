#!/usr/bin/python3
"""make_ckpt_fixtures.py — anomalib-shaped torch checkpoints for the `uflow import` tests.

anomalib is not installed here, so the checkpoints are built the way Lightning and anomalib
build them (anomalib's lightning_model.py / AnomalibModule, OneClassPostProcessor, PreProcessor;
1.x AnomalyModule with its threshold and MinMax normalisation metric states), with stand-in
classes registered under anomalib's module names so the pickle stream names the real classes.
The pre-processor holds a real torchvision Compose([Resize, Normalize]). The weights are
tools/uflow_ref.py's seeded model (make_model_tensors), so a test regenerates them from the seed.
Run with Debian's torch (/usr/bin/python3).

    lightning2 --out X.ckpt  [model opts] [--seed S] [--legacy]   anomalib 2.x Lightning checkpoint
    lightning1 --out X.ckpt  [model opts] [--seed S] [--legacy]   anomalib 1.x checkpoint
    state-dict --out X.pt    [model opts] [--seed S] [--legacy]   bare UflowModel.state_dict()
    reference  --out M.safetensors [model opts] [--seed S]        the same weights as a uflow model
    hostile    --out-dir DIR                                      small refused / broken files
                                                                  (committed: tests/golden/ckpt/)
Model opts: --input-size HxW (default 64x96) --flow-steps (2) --clamp (1.5) --ratio (0.75)
[--permute-soft] --postproc T,PT,MIN,MAX,PMIN,PMAX (default POSTPROC).
"""
import argparse
import collections
import io
import json
import os
import subprocess
import sys
import types

import numpy as np
import torch
import torchvision.transforms as T

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io as stio  # noqa: E402
import uflow_ref  # noqa: E402

# image threshold, pixel threshold, image min, image max, pixel min, pixel max
POSTPROC = (3.25, 2.5, -1.0, 7.0, -2.0, 9.5)
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def fake_module(name):
    """A module object under anomalib's name so pickle records e.g.
    anomalib.pre_processing.pre_processor.PreProcessor (pickle looks classes up by name)."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        n = ".".join(parts[:i])
        if n not in sys.modules:
            sys.modules[n] = types.ModuleType(n)
    return sys.modules[name]


def define(module, cls):
    cls.__module__ = module
    setattr(fake_module(module), cls.__name__, cls)
    return cls


class PreProcessor(torch.nn.Module):
    """anomalib 2.x PreProcessor: an nn.Module (Callback too) whose transform is kept."""

    def __init__(self, transform):
        super().__init__()
        self.transform = transform
        self.export_transform = transform


define("anomalib.pre_processing.pre_processor", PreProcessor)


class Evil:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


define("anomalib.evil", Evil)


def cfg_of(a):
    h, w = uflow_ref.parse_hw(a.input_size)
    return dict(backbone="resnet18", input_size=[h, w], flow_steps=a.flow_steps,
                affine_clamp=a.clamp, affine_subnet_channels_ratio=a.ratio,
                permute_soft=a.permute_soft)


def model_state(a):
    t, meta = uflow_ref.make_model_tensors(cfg_of(a), a.seed)
    sd = collections.OrderedDict()
    for k, v in t.items():
        sd[k] = torch.from_numpy(np.array(v, order="C"))  # keeps 0-d arrays 0-d
    return sd, meta


def hparams(a):
    return {"backbone": "resnet18", "flow_steps": a.flow_steps, "affine_clamp": a.clamp,
            "affine_subnet_channels_ratio": a.ratio, "permute_soft": a.permute_soft}


def transform(a):
    h, w = uflow_ref.parse_hw(a.input_size)
    return T.Compose([T.Resize((h, w), antialias=True), T.Normalize(mean=MEAN, std=STD)])


def optimizer_states(sd):
    params = [torch.nn.Parameter(v.clone()) for k, v in list(sd.items())[-4:]
              if v.dtype == torch.float32]
    opt = torch.optim.Adam(params, lr=1e-3)
    loss = sum((p * p).sum() for p in params)
    loss.backward()
    opt.step()
    return [opt.state_dict()]


def lightning_common(a):
    return {"epoch": 4, "global_step": 125, "pytorch-lightning_version": "2.4.0",
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 5}}}},
            "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None}},
            "lr_schedulers": [], "hparams_name": "kwargs"}


def cmd_lightning2(a):
    msd, _ = model_state(a)
    sd = collections.OrderedDict(("model." + k, v) for k, v in msd.items())
    names = ["_image_threshold", "_pixel_threshold", "image_min", "image_max", "pixel_min",
             "pixel_max"]
    for n, v in zip(names, a.postproc):
        sd["post_processor." + n] = torch.tensor(v)
    # F1AdaptiveThreshold / MinMax metric states of the post-processor (persistent ones)
    sd["post_processor._image_threshold_metric.value"] = torch.tensor(a.postproc[0])
    sd["post_processor._image_min_max_metric.min"] = torch.tensor(a.postproc[2])
    ck = lightning_common(a)
    ck["state_dict"] = sd
    ck["optimizer_states"] = optimizer_states(msd)
    hp = hparams(a)
    hp.update(pre_processor=PreProcessor(transform(a)), post_processor=True, evaluator=True,
              visualizer=True)
    ck["hyper_parameters"] = hp
    save(ck, a)


def cmd_lightning1(a):
    msd, _ = model_state(a)
    sd = collections.OrderedDict(("model." + k, v) for k, v in msd.items())
    pp = a.postproc
    sd["image_threshold.value"] = torch.tensor(pp[0])
    sd["pixel_threshold.value"] = torch.tensor(pp[1])
    for field, (lo, hi) in (("anomaly_maps", pp[4:6]), ("box_scores", (0.0, 1.0)),
                            ("pred_scores", pp[2:4])):
        sd["normalization_metrics.%s.min" % field] = torch.tensor(lo)
        sd["normalization_metrics.%s.max" % field] = torch.tensor(hi)
    ck = lightning_common(a)
    ck["pytorch-lightning_version"] = "2.1.3"
    ck["state_dict"] = sd
    ck["optimizer_states"] = optimizer_states(msd)
    ck["hyper_parameters"] = hparams(a)
    ck["transform"] = transform(a)  # AnomalyModule.on_save_checkpoint
    save(ck, a)


def cmd_state_dict(a):
    msd, _ = model_state(a)
    msd._metadata = collections.OrderedDict({"": {"version": 1}})
    save(msd, a)


def cmd_reference(a):
    t, meta = uflow_ref.make_model_tensors(cfg_of(a), a.seed)
    stio.save(t, {"config": json.dumps(meta), "format": "pt"}, a.out)


def save(obj, a):
    torch.save(obj, a.out, _use_new_zipfile_serialization=not a.legacy)
    print("wrote %s (%d bytes)" % (a.out, os.path.getsize(a.out)))


def cmd_hostile(a):
    d = a.out_dir
    os.makedirs(d, exist_ok=True)
    small = collections.OrderedDict(w=torch.arange(6, dtype=torch.float32).reshape(2, 3))

    def put(name, obj, legacy=False):
        p = os.path.join(d, name)
        torch.save(obj, p, _use_new_zipfile_serialization=not legacy)
        return p

    # a pickle that runs a program on torch.load: os.system inside hyper_parameters
    put("os_system.ckpt", {"state_dict": small, "hyper_parameters": {
        "x": Evil(os.system, ("echo uflow-pwned > /tmp/uflow_pwned",))}})
    put("eval_legacy.pt", {"state_dict": small, "y": Evil(eval, ("1+1",))}, legacy=True)
    put("subprocess.ckpt", {"z": Evil(subprocess.Popen, (["true"],))})
    # a PatchCore checkpoint: the wrong model
    pc = collections.OrderedDict()
    pc["model.memory_bank"] = torch.zeros(8, 16)
    pc["model.feature_extractor.feature_extractor.conv1.weight"] = torch.zeros(4, 3, 3, 3)
    put("patchcore.ckpt", {"state_dict": pc, "pytorch-lightning_version": "2.4.0",
                           "hyper_parameters": {"backbone": "wide_resnet50_2",
                                                "layers": ["layer2", "layer3"],
                                                "coreset_sampling_ratio": 0.1,
                                                "num_neighbors": 9}})
    p = put("small_zip.pt", small)
    put("small_legacy.pt", small, legacy=True)
    raw = open(p, "rb").read()
    with open(os.path.join(d, "truncated.pt"), "wb") as f:
        f.write(raw[: len(raw) // 2])
    with open(os.path.join(d, "garbage.pt"), "wb") as f:
        f.write(bytes((i * 37 + 11) & 0xFF for i in range(300)))
    open(os.path.join(d, "empty.pt"), "wb").close()
    # the same archive with its entries deflated (torch never writes that)
    import zipfile
    zi = zipfile.ZipFile(io.BytesIO(raw))
    with zipfile.ZipFile(os.path.join(d, "deflated.pt"), "w", zipfile.ZIP_DEFLATED) as zo:
        for n in zi.namelist():
            zo.writestr(n, zi.read(n))
    # a float64 and a float16 state_dict, a complex one (unsupported dtype)
    put("f16.pt", collections.OrderedDict(w=torch.arange(6, dtype=torch.float16)))
    put("complex.pt", collections.OrderedDict(w=torch.zeros(3, dtype=torch.complex64)))
    # tiny U-Flow-shaped checkpoints (a few tensors of the right names, not a loadable model):
    # seeds for fuzz/fuzz_ckpt, which stops before the model validation
    mini = collections.OrderedDict()
    mini["model.feature_extractor.feature_normalizations.0.weight"] = torch.ones(4, 2, 3)
    mini["model.flow.module_list.0.global_scale"] = torch.ones(1, 4, 1, 1)
    mini["model.flow.module_list.0.subnet.0.weight"] = torch.zeros(3, 2, 3, 3)
    mini["model.flow.module_list.0.w_perm"] = torch.eye(4).reshape(4, 4, 1, 1)
    mini["model.feature_extractor.feature_extractor.bn1.num_batches_tracked"] = torch.tensor(0)
    mini["post_processor._image_threshold"] = torch.tensor(1.5)
    mini["post_processor.image_min"] = torch.tensor(float("nan"))
    ns = argparse.Namespace(input_size="8x12", flow_steps=1, clamp=1.5, ratio=0.75,
                            permute_soft=False)
    hp = hparams(ns)
    hp["pre_processor"] = PreProcessor(transform(ns))
    put("mini2x.ckpt", {"state_dict": mini, "hyper_parameters": hp,
                        "pytorch-lightning_version": "2.4.0", "epoch": 1, "global_step": 2})
    mini1 = collections.OrderedDict((k, v) for k, v in mini.items() if k.startswith("model."))
    mini1["image_threshold.value"] = torch.tensor(2.0)
    mini1["normalization_metrics.pred_scores.min"] = torch.tensor(-1.0)
    put("mini1x_legacy.ckpt", {"state_dict": mini1, "hyper_parameters": hparams(ns),
                               "transform": transform(ns)}, legacy=True)
    for n in sorted(os.listdir(d)):
        print("%-20s %6d bytes" % (n, os.path.getsize(os.path.join(d, n))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("lightning2", "lightning1", "state-dict", "reference"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True)
        p.add_argument("--input-size", default="64x96")
        p.add_argument("--flow-steps", type=int, default=2)
        p.add_argument("--clamp", type=float, default=1.5)
        p.add_argument("--ratio", type=float, default=0.75)
        p.add_argument("--permute-soft", action="store_true")
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--legacy", action="store_true", help="torch's legacy (non-zip) format")
        p.add_argument("--postproc", type=lambda v: tuple(float(x) for x in v.split(",")),
                       default=POSTPROC, help="the six statistics, comma-separated")
    p = sub.add_parser("hostile")
    p.add_argument("--out-dir", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    {"lightning2": cmd_lightning2, "lightning1": cmd_lightning1, "state-dict": cmd_state_dict,
     "reference": cmd_reference, "hostile": cmd_hostile}[a.cmd](a)


if __name__ == "__main__":
    main()
