"""Minimal safetensors reader/writer (numpy + json only).

File layout: 8-byte little-endian u64 header length N, then N bytes of JSON
header, then the raw tensor data.  The header maps tensor name ->
{"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
start of the data section) plus an optional "__metadata__" str->str map.

Supported dtypes: F32, F64, F16, I64, I32, I16, I8, U8, BOOL.

    tensors, metadata = load(path)        # dict name -> np.ndarray (header order), dict
    save(tensors, metadata, path)         # tensors written in the given (dict) order
"""
import json
import struct

import numpy as np

_DT = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAME = {v: k for k, v in _DT.items()}


def _dtype_name(dt):
    dt = np.dtype(dt)
    if dt.byteorder == ">":
        dt = dt.newbyteorder("<")
    for k, v in _DT.items():
        if v == dt:
            return k
    raise TypeError("unsupported dtype for safetensors: %s" % dt)


def load(path):
    """Return (dict name -> numpy array in header order, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: file too short" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("%s: header length %d beyond file size" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    out = {}
    for name, info in items:
        dt = _DT[info["dtype"]]
        shape = tuple(int(s) for s in info["shape"])
        b, e = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != count * dt.itemsize:
            raise ValueError("%s: tensor %s size mismatch" % (path, name))
        arr = np.frombuffer(raw, dtype=dt, count=count, offset=base + b)
        out[name] = arr.reshape(shape).copy()
    return out, dict(meta)


def save(tensors, metadata, path):
    """Write dict name -> array (order preserved) with a str->str metadata map.

    The JSON header is padded with spaces to a multiple of 8 bytes.
    """
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name, arr in tensors.items():
        a = np.asarray(arr)
        name_dt = _dtype_name(a.dtype)
        a = np.array(a, dtype=_DT[name_dt], order="C", copy=False)
        data = a.tobytes(order="C")
        header[name] = {"dtype": name_dt, "shape": list(a.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((-len(hb)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for d in blobs:
            f.write(d)
