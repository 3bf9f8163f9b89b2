#!/usr/bin/python3
"""PyTorch baseline for the CPU benchmark (DESIGN §9): the same LLaMA as the
engine (DESIGN §3), float32 on the CPU, full-rank AdamW training steps on
random tokens (--lora_rank r: LoRA adapters on every linear layer of the blocks, W
frozen, as PEFT's LoRA trains). The model definition is the reference one in
tests/reference/llama_ref.py (one definition for the reference and the bench).

  bench/torch_llama.py --model_config configs/llama_20m.json --vocab_size 8192
      --batch_size 8 --max_length 256 --steps 10 --threads 2 [--warmup 2]

Times --steps full steps (forward, backward, AdamW step, zero_grad) after
--warmup untimed ones; prints a line per timed step on stderr and one JSON
line last on stdout: {"tokens_per_s", "step_ms", "gflops", ...}.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import llama_ref as R  # noqa: E402


def flops_per_token(cfg, T):
    """Model FLOPs per token, forward + backward, llm.c / PaLM convention:
    6 * N_matmul (every weight multiply: 2 forward, 4 backward; N_matmul counts
    q, k, v, o, gate, up, down of every layer and lm_head, not the embedding)
    + 12 * L * T * C for attention (q k^T and att v, forward and backward,
    counted over the full T x T matrix as PaLM does, not the causal half)."""
    C, I, L, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    n_matmul = L * (4 * C * C + 3 * C * I) + V * C
    return 6 * n_matmul + 12 * L * T * C


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_config", required=True)
    ap.add_argument("--vocab_size", type=int, help="overrides the config's vocab_size")
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--max_length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lora_rank", type=int, default=0, help="LoRA adapters of rank r, W frozen (0: full rank)")
    ap.add_argument("--lora_alpha", type=float, default=32.0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (tools/device_check.sh uses cuda)")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"],
                    help="bf16: autocast the forward to bfloat16 (fp32 master weights and optimizer)")
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    cfg = R.LlamaConfig.from_json(args.model_config, vocab_size=args.vocab_size)
    B, T = args.batch_size, args.max_length
    dev = torch.device(args.device)
    params = {k: v.to(dev) for k, v in
              R.init_params(cfg, seed=args.seed, dtype=torch.float32, lora_r=args.lora_rank).items()}
    trainable = [p for name, p in params.items() if R.is_trainable(name, params)]
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=args.lr, betas=(0.9, 0.999),
                            eps=1e-8, weight_decay=0.0)
    tokens = torch.randint(0, cfg.vocab_size, (B, T + 1)).to(dev)
    idx, targets = tokens[:, :-1], tokens[:, 1:]

    def train_step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            logits = R.forward(params, cfg, idx, lora_alpha=args.lora_alpha)
        loss = R.loss_fn(logits.float(), targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    for _ in range(args.warmup):
        train_step()
    times = []
    for s in range(args.steps):
        t0 = time.perf_counter()
        loss = train_step()
        times.append(time.perf_counter() - t0)
        print(f"step {s}: loss {loss:.4f}  {times[-1] * 1e3:.1f} ms", file=sys.stderr)

    step_s = sum(times) / len(times)
    tokens_per_s = B * T / step_s
    fpt = flops_per_token(cfg, T)
    print(json.dumps({
        "tokens_per_s": round(tokens_per_s, 1),
        "step_ms": round(step_s * 1e3, 2),
        "gflops": round(fpt * tokens_per_s / 1e9, 2),
        "step_ms_min": round(min(times) * 1e3, 2),
        "flops_per_token": fpt,
        "params": sum(p.numel() for p in params.values()),
        "trainable_params": sum(p.numel() for p in trainable), "lora_rank": args.lora_rank,
        "batch_size": B, "max_length": T, "threads": args.threads,
        "device": args.device, "dtype": args.dtype,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
