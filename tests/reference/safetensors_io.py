"""Minimal safetensors reader and writer with numpy only (no HF libraries).

The format (https://github.com/huggingface/safetensors):
  bytes 0..7   u64 little-endian N, the length of the JSON header
  bytes 8..8+N JSON object: {"name": {"dtype": "F32", "shape": [..],
               "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
               (the writer pads it with spaces so the data starts 8-aligned)
  then         the raw little-endian data; data_offsets are relative to the
               first byte after the header.
"""
import json
import struct

import numpy as np

# safetensors dtype name -> numpy little-endian dtype (BF16 handled apart)
_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_NAMES = {np.dtype(v).newbyteorder("<") if np.dtype(v).itemsize > 1 else np.dtype(v): k
          for k, v in _DTYPES.items()}


def read_safetensors(path):
    """Returns (tensors, metadata): tensors is a dict name -> numpy array
    (native byte order; BF16 is widened to float32), metadata a dict."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file ({len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        dtype, shape = info["dtype"], [int(d) for d in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name}: data_offsets {begin},{end} out of range")
        raw = bytes(data[begin:end])
        count = int(np.prod(shape)) if shape else 1
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype in _DTYPES:
            arr = np.frombuffer(raw, dtype=_DTYPES[dtype])
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        if arr.size != count:
            raise ValueError(f"{path}: tensor {name}: {arr.size} elements for shape {shape}")
        tensors[name] = arr.astype(arr.dtype.newbyteorder("=")).reshape(tuple(shape))
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """Writes a dict name -> numpy array (any dtype in _DTYPES) in name order."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name], order="C")  # (ascontiguousarray would make 0-d 1-d)
        le = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
        if le not in _NAMES:
            raise ValueError(f"tensor {name}: unsupported dtype {arr.dtype}")
        raw = arr.astype(le).tobytes()
        header[name] = {"dtype": _NAMES[le], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)
