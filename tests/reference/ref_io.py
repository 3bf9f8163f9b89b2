"""File formats shared by run_reference.py and the C++ test harness
(documented byte by byte in tests/reference/README.md). All little-endian."""
import struct

import numpy as np

TOKENS_MAGIC = b"SLTK"
OUT_MAGIC = b"SLREF\0\0\0"
VERSION = 1


def write_tokens(path, tokens):
    """tokens: (B, T+1) integers -> 'SLTK', u32 version, u32 B, u32 T, i32[B*(T+1)]."""
    tokens = np.asarray(tokens)
    B, T1 = tokens.shape
    with open(path, "wb") as f:
        f.write(TOKENS_MAGIC + struct.pack("<III", VERSION, B, T1 - 1))
        f.write(tokens.astype("<i4").tobytes())


def read_tokens(path):
    """Returns an int64 array (B, T+1)."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:4] != TOKENS_MAGIC:
        raise ValueError(f"{path}: bad magic {blob[:4]!r}, expected {TOKENS_MAGIC!r}")
    version, B, T = struct.unpack("<III", blob[4:16])
    if version != VERSION:
        raise ValueError(f"{path}: unsupported version {version}")
    n = B * (T + 1)
    if len(blob) != 16 + 4 * n:
        raise ValueError(f"{path}: {len(blob)} bytes, expected {16 + 4 * n} for B={B} T={T}")
    return np.frombuffer(blob[16:], dtype="<i4").astype(np.int64).reshape(B, T + 1)


def _record(name, arr):
    arr = np.asarray(arr, dtype="<f4")
    raw = name.encode("utf-8")
    return (struct.pack("<I", len(raw)) + raw + struct.pack("<I", arr.ndim)
            + struct.pack(f"<{arr.ndim}I", *arr.shape) + arr.tobytes())


def write_out(path, logits, loss, grads, losses, grad_norms, finals):
    """logits (B, T, V); grads, finals: lists of (name, array); losses,
    grad_norms: K floats each. Everything is stored as float32."""
    B, T, V = logits.shape
    with open(path, "wb") as f:
        f.write(OUT_MAGIC)
        f.write(struct.pack("<7I", VERSION, B, T, V, len(grads), len(losses), len(finals)))
        f.write(np.asarray(logits, dtype="<f4").tobytes())
        f.write(struct.pack("<f", loss))
        for name, g in grads:
            f.write(_record(name, g))
        f.write(np.asarray(losses, dtype="<f4").tobytes())
        f.write(np.asarray(grad_norms, dtype="<f4").tobytes())
        for name, p in finals:
            f.write(_record(name, p))


def read_out(path):
    """Inverse of write_out: a dict with logits, loss, grads (dict), losses,
    grad_norms, finals (dict). Checks that the file ends where it should."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:8] != OUT_MAGIC:
        raise ValueError(f"{path}: bad magic {blob[:8]!r}")
    version, B, T, V, n_grads, K, n_finals = struct.unpack("<7I", blob[8:36])
    if version != VERSION:
        raise ValueError(f"{path}: unsupported version {version}")
    pos = 36

    def take(fmt_count, dtype="<f4"):
        nonlocal pos
        arr = np.frombuffer(blob, dtype=dtype, count=fmt_count, offset=pos)
        pos += arr.nbytes
        return arr

    def record():
        nonlocal pos
        (n,) = struct.unpack_from("<I", blob, pos)
        name = blob[pos + 4: pos + 4 + n].decode("utf-8")
        pos += 4 + n
        (ndim,) = struct.unpack_from("<I", blob, pos)
        shape = struct.unpack_from(f"<{ndim}I", blob, pos + 4)
        pos += 4 + 4 * ndim
        return name, take(int(np.prod(shape)) if ndim else 1).reshape(shape)

    out = {"logits": take(B * T * V).reshape(B, T, V), "loss": float(take(1)[0])}
    out["grads"] = dict(record() for _ in range(n_grads))
    out["losses"] = take(K)
    out["grad_norms"] = take(K)
    out["finals"] = dict(record() for _ in range(n_finals))
    if pos != len(blob):
        raise ValueError(f"{path}: {len(blob) - pos} trailing bytes")
    return out
