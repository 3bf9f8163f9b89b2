#!/usr/bin/python3
"""Self-checks of the reference (run: /usr/bin/python3 tests/reference/selfcheck.py).
Prints one line per check and 'N passed, M failed'; exit code 1 on any failure."""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import galore_ref as G  # noqa: E402
import llama_ref as R  # noqa: E402
from ref_io import read_out, write_tokens  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

torch.set_num_threads(1)
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""))


def tiny_cfg(init=0.02):
    return R.LlamaConfig(dict(hidden_size=8, intermediate_size=12, num_attention_heads=2,
                              num_hidden_layers=2, vocab_size=11, rms_norm_eps=1e-5,
                              max_sequence_length=16, initializer_range=init))


def maxdiff(a, b):
    a, b = (torch.tensor(np.array(x)) if isinstance(x, np.ndarray) else x for x in (a, b))
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


# ------------------------------------------------------------ safetensors

def check_safetensors(tmp):
    path = os.path.join(tmp, "t.safetensors")
    rng = np.random.default_rng(0)
    t = {"f32": rng.standard_normal((3, 5)).astype(np.float32),
         "f64": rng.standard_normal((2,)), "i32": np.arange(7, dtype=np.int32),
         "empty": np.zeros((0, 4), np.float32), "scalar": np.array(3.5, np.float32)}
    write_safetensors(path, t, {"format": "pt"})
    back, meta = read_safetensors(path)
    ok = all(back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)
             for k, v in t.items()) and meta == {"format": "pt"}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    check("safetensors round trip keeps dtype, shape and bits; data 8-aligned",
          ok and (8 + n) % 8 == 0)
    # a hand-made BF16 file: 1.0 = 0x3F80, -2.5 = 0xC020
    hdr = json.dumps({"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + struct.pack("<2H", 0x3F80, 0xC020))
    back, _ = read_safetensors(path)
    check("safetensors reads BF16 as float32", list(back["x"]) == [1.0, -2.5])


# ------------------------------------------------------------ model

def naive_forward(p, cfg, idx, lora_alpha):
    """Loop-by-loop numpy LLaMA written from DESIGN §3, independent of llama_ref."""
    P = {n: t.detach().numpy().astype(np.float64) for n, t in p.items()}
    C, NH, V = cfg.hidden_size, cfg.num_attention_heads, cfg.vocab_size
    HS = C // NH
    B, T = idx.shape

    def lin(mod, x):
        y = x @ P[mod + ".weight"].T
        if mod + ".lora_A.weight" in P:
            A, Bm = P[mod + ".lora_A.weight"], P[mod + ".lora_B.weight"]
            y = y + lora_alpha / A.shape[0] * (Bm @ (A @ x.T)).T
        return y

    def norm(x, g):
        return np.array([row / math.sqrt(np.mean(row * row) + cfg.rms_norm_eps) * g for row in x])

    def rope(x):  # x (T, C)
        out = np.empty_like(x)
        for t in range(T):
            for h in range(NH):
                for i in range(HS // 2):
                    a = t * cfg.rope_theta ** (-2.0 * i / HS)
                    x0, x1 = x[t, h * HS + i], x[t, h * HS + i + HS // 2]
                    out[t, h * HS + i] = x0 * math.cos(a) - x1 * math.sin(a)
                    out[t, h * HS + i + HS // 2] = x1 * math.cos(a) + x0 * math.sin(a)
        return out

    logits = np.zeros((B, T, V))
    for b in range(B):
        x = P["model.embed_tokens.weight"][idx[b]]
        for l in range(cfg.num_hidden_layers):
            pre = f"model.layers.{l}."
            n1 = norm(x, P[pre + "input_layernorm.weight"])
            q, k = rope(lin(pre + "self_attn.q_proj", n1)), rope(lin(pre + "self_attn.k_proj", n1))
            v = lin(pre + "self_attn.v_proj", n1)
            y = np.zeros((T, C))
            for h in range(NH):
                s = slice(h * HS, (h + 1) * HS)
                for t in range(T):
                    sc = np.array([q[t, s] @ k[u, s] / math.sqrt(HS) for u in range(t + 1)])
                    w = np.exp(sc - sc.max())
                    w /= w.sum()
                    y[t, s] = sum(w[u] * v[u, s] for u in range(t + 1))
            x = x + lin(pre + "self_attn.o_proj", y)
            n2 = norm(x, P[pre + "post_attention_layernorm.weight"])
            g, u = lin(pre + "mlp.gate_proj", n2), lin(pre + "mlp.up_proj", n2)
            x = x + lin(pre + "mlp.down_proj", g / (1 + np.exp(-g)) * u)
        logits[b] = norm(x, P["model.norm.weight"]) @ P["lm_head.weight"].T
    return logits


def check_model():
    cfg = tiny_cfg(init=0.3)
    idx = torch.randint(0, cfg.vocab_size, (2, 6), generator=torch.Generator().manual_seed(1))
    for r, alpha in ((0, 1.0), (2, 3.0)):
        p = R.init_params(cfg, seed=2, dtype=torch.float64, lora_r=r)
        with torch.no_grad():  # non-trivial norm weights
            for n in p:
                if p[n].dim() == 1:
                    p[n] += 0.1 * torch.randn(p[n].shape, dtype=torch.float64)
        d = maxdiff(R.forward(p, cfg, idx, alpha), naive_forward(p, cfg, idx.numpy(), alpha))
        check(f"forward equals a loop-by-loop numpy LLaMA (lora r={r})", d < 1e-12, f"max |diff| {d:.2e}")


def check_gradcheck():
    cfg = tiny_cfg(init=0.3)
    idx = torch.randint(0, cfg.vocab_size, (2, 4), generator=torch.Generator().manual_seed(3))
    for r in (0, 2):
        p = R.init_params(cfg, seed=4, dtype=torch.float64, lora_r=r)
        names = [n for n in p if R.is_trainable(n, p)]

        def f(*ts):
            q = dict(p)
            q.update(zip(names, ts))
            return R.forward(q, cfg, idx, 2.0)

        inputs = tuple(p[n].clone().requires_grad_(True) for n in names)
        ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)
        check(f"gradcheck of logits w.r.t. all {len(names)} trainable tensors (lora r={r})", ok)


# ------------------------------------------------------------ switches

def check_switch():
    cfg = tiny_cfg(init=0.3)
    idx = torch.randint(0, cfg.vocab_size, (2, 6), generator=torch.Generator().manual_seed(5))
    p = R.init_params(cfg, seed=6, dtype=torch.float64, lora_r=3)
    alpha = 2.0
    g = torch.Generator().manual_seed(7)
    before = R.forward(p, cfg, idx, alpha)
    worst = 0.0
    for mod in R.linear_modules(cfg):
        A, Bm = p[mod + ".lora_A.weight"], p[mod + ".lora_B.weight"]
        for i in range(A.shape[0]):
            old = R.switch_A_row(p, mod, i, torch.randn(A.shape[1], generator=g, dtype=torch.float64), alpha)
            check_old = old.shape == (A.shape[1],)
            R.switch_B_col(p, mod, i, torch.randn(Bm.shape[0], generator=g, dtype=torch.float64), alpha)
        R.switch_A_row(p, mod, 0, A[0].clone(), alpha)        # candidate == current row
        R.switch_B_col(p, mod, 1, Bm[:, 1].clone(), alpha)
        worst = max(worst, maxdiff(R.forward(p, cfg, idx, alpha), before))
    check("switching every A row and B column of every layer leaves logits unchanged (f64)",
          worst < 1e-12 and check_old, f"max |diff| {worst:.2e}")
    # and the switch did change the adapters (the check above is not vacuous)
    p2 = R.init_params(cfg, seed=6, dtype=torch.float64, lora_r=3)
    changed = maxdiff(p2["model.layers.0.mlp.up_proj.lora_A.weight"], p["model.layers.0.mlp.up_proj.lora_A.weight"])
    mod = "model.layers.0.mlp.up_proj"
    merged = lambda q: q[mod + ".weight"] + R.lora_scale(q, mod, alpha) * q[mod + ".lora_B.weight"] @ q[mod + ".lora_A.weight"]
    check("switch changes A, B, W but keeps W + s*B*A", changed > 0.1 and maxdiff(merged(p), merged(p2)) < 1e-13)


# ------------------------------------------------------------ optimizer

def grad_sequence(params, steps, seed):
    g = torch.Generator().manual_seed(seed)
    return [{n: torch.randn(t.shape, generator=g, dtype=torch.float64) for n, t in params.items()}
            for _ in range(steps)]


def torch_adamw(params, grads_seq, lr, wd):
    ps = [t.clone().requires_grad_(True) for t in params.values()]
    opt = torch.optim.AdamW(ps, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    for gs in grads_seq:
        for p, g in zip(ps, gs.values()):
            p.grad = g.clone()
        opt.step()
    return dict(zip(params, [p.detach() for p in ps]))


def check_adamw():
    shapes = {"w": (4, 3), "b": (5,), "x.lora_A.weight": (2, 3), "x.lora_B.weight": (4, 2)}
    g0 = torch.Generator().manual_seed(8)
    params = {n: torch.randn(s, generator=g0, dtype=torch.float64) for n, s in shapes.items()}
    seq = grad_sequence(params, 5, 9)
    want = torch_adamw(params, seq, lr=1e-2, wd=0.1)
    mine = {n: t.clone() for n, t in params.items()}
    opt = R.RefAdamW(mine, weight_decay=0.1)
    for gs in seq:
        opt.step(gs, 1e-2)
    d = max(maxdiff(mine[n], want[n]) for n in params)
    check("RefAdamW (per-tensor, per-row, per-column counters) == torch.optim.AdamW, 5 steps",
          d < 1e-14, f"max |diff| {d:.2e}")

    # reset of A's row 1 after 3 steps: that row continues as a fresh AdamW
    seq = grad_sequence(params, 6, 10)
    mine = {n: t.clone() for n, t in params.items()}
    opt = R.RefAdamW(mine, weight_decay=0.1)
    for t, gs in enumerate(seq):
        if t == 3:
            row_at_reset = mine["x.lora_A.weight"][1].clone()
            opt.reset("x.lora_A.weight", 1)
        opt.step(gs, 1e-2)
    want_row = torch_adamw({"r": row_at_reset}, [{"r": gs["x.lora_A.weight"][1]} for gs in seq[3:]], 1e-2, 0.1)["r"]
    want_all = torch_adamw(params, seq, 1e-2, 0.1)
    d_row = maxdiff(mine["x.lora_A.weight"][1], want_row)
    d_rest = max(maxdiff(mine["x.lora_A.weight"][0], want_all["x.lora_A.weight"][0]),
                 maxdiff(mine["x.lora_B.weight"], want_all["x.lora_B.weight"]),
                 maxdiff(mine["w"], want_all["w"]))
    check("reset of one A row restarts its bias correction, other vectors untouched",
          d_row < 1e-14 and d_rest < 1e-14, f"row {d_row:.2e}, rest {d_rest:.2e}")

    # skip_frozen: freeze B's column 0 for 2 steps at step 1: skipped entirely, then resumes
    seq = grad_sequence(params, 5, 11)
    mine = {n: t.clone() for n, t in params.items()}
    opt = R.RefAdamW(mine, weight_decay=0.1, skip_frozen=True)
    frozen_ok = True
    for t, gs in enumerate(seq):
        if t == 1:
            opt.freeze("x.lora_B.weight", 0, 2)
        snap = (mine["x.lora_B.weight"][:, 0].clone(), opt.m["x.lora_B.weight"][:, 0].clone(),
                int(opt.counter["x.lora_B.weight"][0, 0]))
        opt.step(gs, 1e-2)
        if t in (1, 2):
            frozen_ok &= (torch.equal(snap[0], mine["x.lora_B.weight"][:, 0])
                          and torch.equal(snap[1], opt.m["x.lora_B.weight"][:, 0])
                          and snap[2] == int(opt.counter["x.lora_B.weight"][0, 0]))
    keep = [0, 3, 4]
    want_col = torch_adamw({"c": params["x.lora_B.weight"][:, 0]},
                           [{"c": seq[t]["x.lora_B.weight"][:, 0]} for t in keep], 1e-2, 0.1)["c"]
    d = maxdiff(mine["x.lora_B.weight"][:, 0], want_col)
    check("skip_frozen: frozen B column: no update, no moments, no counter, no decay for exactly 2 steps",
          frozen_ok and d < 1e-14 and int(opt.counter["x.lora_B.weight"][0, 0]) == 3
          and int(opt.counter["x.lora_B.weight"][0, 1]) == 5, f"col {d:.2e}")

    # The authors' rule (default): B's column 0 reset and frozen at step 1 for 2
    # steps, its gradient zeroed by the caller: it is torch.optim.AdamW restarted
    # at the reset and fed zeros while frozen, so it stays put (moments 0), its
    # counter counts the frozen steps, and it thaws at k = 3.
    mine = {n: t.clone() for n, t in params.items()}
    opt = R.RefAdamW(mine)
    col = None
    for t, gs in enumerate(seq):
        if t == 1:
            opt.reset("x.lora_B.weight", 0)
            opt.freeze("x.lora_B.weight", 0, 2)
            col = mine["x.lora_B.weight"][:, 0].clone()
        gs = {n: g.clone() for n, g in gs.items()}
        gs["x.lora_B.weight"][opt.frozen_mask("x.lora_B.weight")] = 0
        opt.step(gs, 1e-2)
        if t == 2:
            still = torch.equal(mine["x.lora_B.weight"][:, 0], col) and int(opt.counter["x.lora_B.weight"][0, 0]) == 2
    fed = [{"c": torch.zeros(4, dtype=torch.float64)}] * 2 + [{"c": seq[t]["x.lora_B.weight"][:, 0]} for t in (3, 4)]
    want_col = torch_adamw({"c": col}, fed, 1e-2, 0.0)["c"]
    d = maxdiff(mine["x.lora_B.weight"][:, 0], want_col)
    check("frozen B column (the authors' rule): zero-gradient steps counted, no move, thaws at k = 3",
          still and d < 1e-14 and int(opt.counter["x.lora_B.weight"][0, 0]) == 4, f"col {d:.2e}")

    gs = [torch.full((3,), 2.0, dtype=torch.float64), torch.full((4,), 2.0, dtype=torch.float64)]
    n = R.clip_grad_norm(gs, 1.0)
    check("clip_grad_norm returns the pre-clip norm and scales to max_norm",
          abs(n - 2 * math.sqrt(7)) < 1e-12 and abs(R.clip_grad_norm(gs, 0) - 1.0) < 1e-12)


# ------------------------------------------------------------ CLI end to end

def write_case(tmp, cfg, params, tokens, extra=None):
    cfg_path, w_path, t_path = (os.path.join(tmp, f) for f in ("cfg.json", "w.safetensors", "tok.bin"))
    with open(cfg_path, "w") as f:
        json.dump(vars(cfg), f)
    ts = {n: t.detach().numpy().astype(np.float32) for n, t in params.items()}
    ts.update(extra or {})
    write_safetensors(w_path, ts)
    write_tokens(t_path, tokens)
    return cfg_path, w_path, t_path


def run_cli(tmp, cfg_path, w_path, t_path, *extra):
    out = os.path.join(tmp, "out.bin")
    cmd = [sys.executable, os.path.join(HERE, "run_reference.py"), "--config", cfg_path,
           "--weights", w_path, "--tokens", t_path, "--out", out, *map(str, extra)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        print(res.stderr)
        return None
    return read_out(out)


def torch_trajectory(params, cfg, tokens, steps, lr, wd, alpha):
    """Independent of RefAdamW and run_reference: torch.optim.AdamW, no clipping."""
    p = {n: t.clone() for n, t in params.items()}
    train = [n for n in p if R.is_trainable(n, p)]
    for n in train:
        p[n].requires_grad_(True)
    opt = torch.optim.AdamW([p[n] for n in train], lr=lr, weight_decay=wd)
    tok = torch.from_numpy(tokens)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = R.loss_fn(R.forward(p, cfg, tok[:, :-1], alpha), tok[:, 1:])
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


def check_cli(tmp):
    cfg = tiny_cfg(init=0.3)
    rng = np.random.default_rng(12)
    tokens = rng.integers(0, cfg.vocab_size, (2, 7))
    for r, alpha in ((0, 1.0), (2, 2.0)):
        # round through float32 so that the file holds exactly these values
        params = {n: t.float().double() for n, t in
                  R.init_params(cfg, seed=13, dtype=torch.float64, lora_r=r).items()}
        paths = write_case(tmp, cfg, params, tokens)
        out = run_cli(tmp, *paths, "--lora_alpha", alpha, "--steps", 4, "--lr", 1e-2,
                      "--weight_decay", 0.1, "--clip", 0)
        if out is None:
            check(f"CLI run (lora r={r})", False, "run_reference.py failed")
            continue
        p = {n: t.clone() for n, t in params.items()}
        train = [n for n in p if R.is_trainable(n, p)]
        for n in train:
            p[n].requires_grad_(True)
        tok = torch.from_numpy(tokens)
        logits = R.forward(p, cfg, tok[:, :-1], alpha)
        loss = R.loss_fn(logits, tok[:, 1:])
        loss.backward()
        d_logits = maxdiff(out["logits"], logits.detach().float())
        d_grads = max(maxdiff(out["grads"][n], p[n].grad.float()) for n in train)
        names_ok = list(out["grads"]) == train and (r == 0) == (len(train) == len(p))
        want = torch_trajectory(params, cfg, tokens, 4, 1e-2, 0.1, alpha)
        d_loss = max(abs(a - b) for a, b in zip(out["losses"], want))
        # float32 storage: compare with float32 resolution
        check(f"CLI (lora r={r}): logits, loss, grads of exactly the trainable tensors",
              d_logits < 1e-6 and d_grads < 1e-7 and names_ok and abs(out["loss"] - float(loss)) < 1e-6,
              f"logits {d_logits:.1e}, grads {d_grads:.1e}, {len(train)} grads")
        check(f"CLI (lora r={r}): 4 AdamW losses == torch.optim.AdamW trajectory",
              d_loss < 1e-6 and len(out["finals"]) == len(p), f"max |diff| {d_loss:.1e}")

    # A switch plan, checked against hand-computed expectations. Three runs with
    # 1, 2, 3 steps give the parameters after each step (P1, P2, P3).
    params = {n: t.float().double() for n, t in
              R.init_params(cfg, seed=14, dtype=torch.float64, lora_r=2).items()}
    mod, alpha = "model.layers.1.mlp.down_proj", 2.0
    s = alpha / 2
    pool = rng.standard_normal((3, cfg.intermediate_size)).astype(np.float32)
    paths = write_case(tmp, cfg, params, tokens, {mod + ".candidates_A": pool})
    plan = [{"step": 1, "layer": mod, "kind": "A", "index": 1,          # by reference
             "candidate": {"tensor": mod + ".candidates_A", "row": 2}},
            {"step": 2, "layer": mod, "kind": "B", "index": 0,          # inline
             "candidate": [0.5] * cfg.hidden_size}]
    runs = []
    for steps in (1, 2, 3):
        plan_path = os.path.join(tmp, f"plan{steps}.json")
        with open(plan_path, "w") as f:
            json.dump([e for e in plan if e["step"] < steps], f)
        runs.append(run_cli(tmp, *paths, "--lora_alpha", alpha, "--steps", steps, "--lr", 1e-2,
                            "--clip", 0.5, "--switch_plan", plan_path, "--adam_warm_step", 5))
    if any(o is None for o in runs):
        check("CLI with a switch plan", False, "run_reference.py failed")
        return
    P1, P2, P3 = ({k: v.astype(np.float64) for k, v in o["finals"].items()} for o in runs)
    A, Bn, W = mod + ".lora_A.weight", mod + ".lora_B.weight", mod + ".weight"
    W_want = (params[W].numpy() + s * np.outer(P1[Bn][:, 1], P1[A][1] - pool[2])
              + s * np.outer(P2[Bn][:, 0] - 0.5, P2[A][0]))
    d_w = np.abs(P3[W] - W_want).max()
    check("CLI switch plan: W3 = W0 + s B[:,1](A[1]-c1)^T + s (B[:,0]-c2) A[0]^T at the switch times",
          d_w < 1e-6, f"max |diff| {d_w:.1e}")
    frozen = (np.array_equal(P3[Bn][:, 1], P1[Bn][:, 1]) and np.array_equal(P2[Bn][:, 1], P1[Bn][:, 1])
              and np.array_equal(P3[A][0], P2[A][0]) and not np.array_equal(P2[A][0], P1[A][0]))
    check("CLI switch plan: counterparts frozen (B col 1 from step 1, A row 0 from step 2)", frozen)
    moved = (0 < np.abs(P2[A][1] - pool[2]).max() < 0.02 and 0 < np.abs(P3[Bn][:, 0] - 0.5).max() < 0.02
             and not np.array_equal(P3[A][1], P2[A][1]))
    prefix = (np.array_equal(runs[2]["losses"][:2], runs[1]["losses"])
              and np.array_equal(runs[1]["losses"][:1], runs[0]["losses"]))
    clipped = all(n > 0.5 for n in runs[2]["grad_norms"])
    check("CLI switch plan: switched vectors start at the candidate and keep training; "
          "runs are deterministic; clip saw norms > 0.5", moved and prefix and clipped,
          f"norms {[round(float(n), 3) for n in runs[2]['grad_norms']]}")


# ------------------------------------------------------------ GaLore

def check_galore():
    torch.manual_seed(3)
    ok_shape = ok_ortho = ok_sign = ok_top = ok_back = True
    for m, n in ((9, 6), (6, 9)):
        g = torch.randn(m, n, dtype=torch.float64)
        sigma = torch.linalg.svdvals(g)
        for proj_type in ("std", "reverse_std", "left", "right", "full"):
            left, right = G.sides(proj_type, m, n)
            Ur, Vhr = G.projectors(g, 3, proj_type)
            R = G.project(g, Ur, Vhr)
            ok_shape &= R.shape == ((3 if left else m), (3 if right else n))
            ok_shape &= (Ur is not None) == left and (Vhr is not None) == right
            for P in (x for x in (Ur.T if left else None, Vhr) if x is not None):
                ok_ortho &= maxdiff(P @ P.T, torch.eye(3, dtype=torch.float64)) < 1e-12
                ok_sign &= bool((P[torch.arange(3), P.abs().argmax(dim=1)] > 0).all())
            if left != right:  # one side: R keeps the r largest singular values
                ok_top &= abs(float((R ** 2).sum() - (sigma[:3] ** 2).sum())) < 1e-10
            # a rank-min(m, n) projector loses nothing: back(project(G)) = G
            full = G.projectors(g, min(m, n), proj_type)
            ok_back &= maxdiff(G.project_back(G.project(g, *full), *full), g) < 1e-12
        ok_shape &= G.sides("std", m, n) == ((False, True) if m >= n else (True, False))
    check("GaLore projections: shapes per proj_type (std: right when m >= n), orthonormal, "
          "largest entry positive", ok_shape and ok_ortho and ok_sign)
    check("GaLore projections keep the r largest singular values; rank min(m, n) is lossless", ok_top and ok_back)

    # Unprojected tensors with eps = 0, wd = 0: exactly torch.optim.AdamW (the eps
    # placement is then moot); projectors refresh at steps 0, T, 2T only.
    w0 = {"model.norm.weight": torch.randn(5, dtype=torch.float64),
          "model.layers.0.mlp.up_proj.weight": torch.randn(8, 5, dtype=torch.float64)}
    params = {k: v.clone() for k, v in w0.items()}
    ref = torch.nn.Parameter(w0["model.norm.weight"].clone())
    topt = torch.optim.AdamW([ref], lr=1e-2, eps=0.0, weight_decay=0.0)
    opt = G.RefGaloreAdamW(params, rank=2, update_proj_gap=3, scale=0.25, proj_type="std", eps=0.0)
    refreshed = []
    for t in range(7):
        grads = {k: torch.randn_like(v) for k, v in params.items()}
        before = opt.proj.get("model.layers.0.mlp.up_proj.weight")
        opt.step(grads, 1e-2)
        refreshed.append(before is None or opt.proj["model.layers.0.mlp.up_proj.weight"][1] is not before[1])
        ref.grad = grads["model.norm.weight"].clone()
        topt.step()
    check("RefGaloreAdamW on an unprojected tensor (eps 0) == torch.optim.AdamW, 7 steps",
          maxdiff(params["model.norm.weight"], ref.detach()) < 1e-12)
    check("RefGaloreAdamW refreshes projections at steps 0, 3, 6 only; moments r x n",
          refreshed == [True, False, False, True, False, False, True]
          and opt.m["model.layers.0.mlp.up_proj.weight"].shape == (8, 2), f"{refreshed}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        check_safetensors(tmp)
        check_model()
        check_gradcheck()
        check_switch()
        check_adamw()
        check_galore()
        check_cli(tmp)
    failed = RESULTS.count(False)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
