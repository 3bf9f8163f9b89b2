#!/usr/bin/python3
"""Reference run for the C++ test harness: one forward/backward on a batch, then
K optimizer steps with forced SwitchLoRA switches. Formats: README.md here.

  run_reference.py --config CFG.json --weights W.safetensors --tokens TOK.bin
                   --out OUT.bin [--lora_alpha 1] [--dtype float64]
                   [--steps K --lr LR --weight_decay WD --clip 1.0
                    --switch_plan PLAN.json --adam_warm_step 5
                    --relora_plan RELORA.json
                    --galore_rank R --update_proj_gap T --galore_scale S
                    --proj_type std --adam_eps 1e-6]

Each of the K steps (on the same batch, constant lr):
  forward, backward, clip grad norm, switches of this step (plan order),
  zero the frozen vectors' grads, AdamW step, then ReLoRA's events of this
  step: merges (W += s B A, A = the given values, B = 0) and optimizer
  resets (the given entries of each adapter's exp_avg / exp_avg_sq zeroed;
  step counts untouched).
With --galore_rank R > 0 the AdamW step is GaLore's (galore_ref.py): its own
SVD of each attention/MLP gradient every T steps, Adam on the projection.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import galore_ref  # noqa: E402
import llama_ref as R  # noqa: E402
from ref_io import read_tokens, write_out  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402


def fail(msg):
    print(f"run_reference: error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_params(cfg, tensors, dtype):
    """Model parameters in model order; LoRA adapters where the file has them.
    Returns (params, extras): extras are the file's other tensors (candidates)."""
    params = {}
    for name, shape in R.param_shapes(cfg).items():
        if name not in tensors:
            fail(f"weights: missing tensor {name}")
        params[name] = tensors[name]
        module = name[: -len(".weight")]
        a, b = module + ".lora_A.weight", module + ".lora_B.weight"
        if (a in tensors) != (b in tensors):
            fail(f"weights: {module} has only one of lora_A / lora_B")
        if a in tensors:
            params[a], params[b] = tensors[a], tensors[b]
            out_f, in_f = shape
            r = tensors[a].shape[0]
            if tuple(tensors[a].shape) != (r, in_f) or tuple(tensors[b].shape) != (out_f, r):
                fail(f"weights: {module}: lora_A {tensors[a].shape} / lora_B {tensors[b].shape}"
                     f" do not fit W {shape}")
        if tuple(tensors[name].shape) != tuple(shape):
            fail(f"weights: {name} has shape {tuple(tensors[name].shape)}, config says {shape}")
    extras = {n: t for n, t in tensors.items() if n not in params}
    to_t = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=dtype)
    return {n: to_t(a) for n, a in params.items()}, {n: to_t(a) for n, a in extras.items()}


def load_plan(path, params, extras, steps):
    with open(path) as f:
        plan = json.load(f)
    if isinstance(plan, dict):
        plan = plan.get("switches", [])
    by_step = {}
    for k, e in enumerate(plan):
        where = f"switch_plan entry {k}"
        t, module, kind, idx = int(e["step"]), e["layer"], e["kind"], int(e["index"])
        if not 0 <= t < steps:
            fail(f"{where}: step {t} outside [0, {steps})")
        if module + ".lora_A.weight" not in params:
            fail(f"{where}: layer {module} has no LoRA adapters")
        if kind not in ("A", "B"):
            fail(f"{where}: kind {kind!r} must be 'A' or 'B'")
        A = params[module + ".lora_A.weight"]
        W = params[module + ".weight"]
        r, length = A.shape[0], (A.shape[1] if kind == "A" else W.shape[0])
        if not 0 <= idx < r:
            fail(f"{where}: index {idx} outside [0, {r})")
        c = e["candidate"]
        if isinstance(c, dict):
            if c.get("tensor") not in extras and c.get("tensor") not in params:
                fail(f"{where}: candidate tensor {c.get('tensor')!r} not in the weights file")
            src = extras.get(c["tensor"], params.get(c["tensor"]))
            c = src[int(c["row"]), :] if "row" in c else src[:, int(c["col"])]
        c = torch.as_tensor(c, dtype=A.dtype).clone()
        if c.shape != (length,):
            fail(f"{where}: candidate has shape {tuple(c.shape)}, expected ({length},)")
        by_step.setdefault(t, []).append((module, kind, idx, c))
    return by_step


def load_relora_plan(path, params, steps):
    """{"merges": [{"step", "layer", "A": [...]}], "resets": [{"step", "tensor",
    "exp_avg": [flat indices], "exp_avg_sq": [flat indices]}]} -> per step."""
    with open(path) as f:
        plan = json.load(f)
    merges, resets = {}, {}
    for k, e in enumerate(plan.get("merges", [])):
        t, module = int(e["step"]), e["layer"]
        if not 0 <= t < steps or module + ".lora_A.weight" not in params:
            fail(f"relora_plan merge {k}: bad step {t} or layer {module}")
        A = params[module + ".lora_A.weight"]
        if len(e["A"]) != A.numel():
            fail(f"relora_plan merge {k}: {len(e['A'])} values for A of shape {tuple(A.shape)}")
        merges.setdefault(t, []).append((module, e["A"]))
    for k, e in enumerate(plan.get("resets", [])):
        t, name = int(e["step"]), e["tensor"]
        if not 0 <= t < steps or name not in params:
            fail(f"relora_plan reset {k}: bad step {t} or tensor {name}")
        resets.setdefault(t, []).append((name, e["exp_avg"], e["exp_avg_sq"]))
    return merges, resets


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lora_alpha", type=float, default=1.0)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight_decay", type=float, default=0.0)
    ap.add_argument("--clip", type=float, default=1.0, help="global grad-norm clip; <= 0: none")
    ap.add_argument("--switch_plan")
    ap.add_argument("--adam_warm_step", type=int, default=5)
    ap.add_argument("--thaw_restarts_bias_correction", action="store_true",
                    help="the optimizer skips frozen vectors (default: counts their zero-gradient steps, the authors')")
    ap.add_argument("--relora_plan")
    ap.add_argument("--galore_rank", type=int, default=0, help="> 0: GaLore's projected AdamW at this rank")
    ap.add_argument("--update_proj_gap", type=int, default=200)
    ap.add_argument("--galore_scale", type=float, default=0.25)
    ap.add_argument("--proj_type", choices=["std", "reverse_std", "left", "right", "full"], default="std")
    ap.add_argument("--adam_eps", type=float, default=1e-8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32

    try:
        cfg = R.LlamaConfig.from_json(args.config)
        tensors, _ = read_safetensors(args.weights)
        tokens = read_tokens(args.tokens)
    except (OSError, ValueError) as e:
        fail(str(e))
    params, extras = load_params(cfg, tensors, dtype)
    if tokens.min() < 0 or tokens.max() >= cfg.vocab_size:
        fail(f"tokens: values outside [0, {cfg.vocab_size})")
    tok = torch.from_numpy(tokens)
    idx, targets = tok[:, :-1], tok[:, 1:]
    plan = load_plan(args.switch_plan, params, extras, args.steps) if args.switch_plan else {}
    merges, resets = load_relora_plan(args.relora_plan, params, args.steps) if args.relora_plan else ({}, {})

    trainable = [n for n in params if R.is_trainable(n, params)]
    for n in trainable:
        params[n].requires_grad_(True)

    def forward_backward():
        for n in trainable:
            params[n].grad = None
        logits = R.forward(params, cfg, idx, args.lora_alpha)
        loss = R.loss_fn(logits, targets)
        loss.backward()
        return logits.detach(), float(loss)

    logits, loss = forward_backward()
    grads = [(n, params[n].grad.numpy().copy()) for n in trainable]

    if args.galore_rank > 0:
        if plan or merges or resets:
            fail("--galore_rank trains full-rank weights: no switch or ReLoRA plan")
        opt = galore_ref.RefGaloreAdamW({n: params[n] for n in trainable}, args.galore_rank, args.update_proj_gap,
                                        args.galore_scale, args.proj_type, eps=args.adam_eps,
                                        weight_decay=args.weight_decay)
    else:
        opt = R.RefAdamW({n: params[n] for n in trainable}, eps=args.adam_eps, weight_decay=args.weight_decay,
                         skip_frozen=args.thaw_restarts_bias_correction)
    losses, norms = [], []
    for t in range(args.steps):
        _, step_loss = forward_backward()
        g = {n: params[n].grad for n in trainable}
        norms.append(R.clip_grad_norm(list(g.values()), args.clip))
        for module, kind, i, c in plan.get(t, []):
            a, b = module + ".lora_A.weight", module + ".lora_B.weight"
            with torch.no_grad():
                if kind == "A":
                    R.switch_A_row(params, module, i, c, args.lora_alpha)
                    other = b        # B's column i freezes, its state restarts
                else:
                    R.switch_B_col(params, module, i, c, args.lora_alpha)
                    other = a        # A's row i freezes, its state restarts
            opt.reset(other, i, moments=True, counter=True)
            opt.freeze(other, i, args.adam_warm_step)
        if args.galore_rank == 0:
            with torch.no_grad():
                for n in trainable:
                    g[n][opt.frozen_mask(n)] = 0
        opt.step(g, args.lr)
        for module, new_A in merges.get(t, []):
            R.relora_merge(params, module, new_A, args.lora_alpha)
        with torch.no_grad():
            for name, zero_m, zero_v in resets.get(t, []):
                opt.m[name].view(-1)[torch.tensor(zero_m, dtype=torch.long)] = 0
                opt.v[name].view(-1)[torch.tensor(zero_v, dtype=torch.long)] = 0
        losses.append(step_loss)

    finals = [(n, p.detach().numpy()) for n, p in params.items()] if args.steps else []
    write_out(args.out, logits.numpy(), loss, grads, losses, norms, finals)


if __name__ == "__main__":
    main()
