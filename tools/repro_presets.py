"""The presets of tools/repro.py: what each reproduction trains (DESIGN §6, §7).

A CPU preset ("kind": "cpu") is run here: every method on the same data,
batch, sequence length and token budget, a learning-rate sweep of each
method around its recommended rate (seed 0), then the other seeds at the
best rate. A paper preset ("kind": "paper") prints the `mpirun` commands of
the paper's runs for a GPU cluster, with the paper's own numbers beside them.

Methods are named by the row of the table they make:
  full, lora, relora, galore, switchlora   from scratch, the same tokens
  relora_warm, switchlora_warm             from the full-rank run's weights at
                                           `warm_steps` (the authors' ReLoRA
                                           comparison), then the rest of the budget
  <method>+na_lr                           the ablation: embeddings, norms and
                                           lm_head at full rank's best rate
                                           (--non_adapter_lr), adapters at their own
"""

# Recommended rates: the authors' scripts at 350M (full 1e-3, LoRA 1e-2,
# SwitchLoRA 2e-2, GaLore 1e-2 with scale 0.25; ReLoRA's repository 1e-3),
# the centre of each CPU sweep.
RECOMMENDED_LR = {"full": 1e-3, "lora": 1e-2, "relora": 1e-3, "galore": 1e-2, "switchlora": 2e-2}


def parent(method):
    """The from-scratch method a row derives from: switchlora_warm+na_lr -> switchlora."""
    return method.split("+")[0].replace("_warm", "")


def method_flags(method, rank, steps, warm_steps):
    """The train flags of one method at LoRA/GaLore rank `rank` over a budget
    of `steps` steps, `warm_steps` of them the full-rank warm start's."""
    base = parent(method)
    own = steps - warm_steps  # the caller passes 0 but for the *_warm rows
    if base == "full":
        return []
    if base == "lora":
        return ["--use_lora", "--lora_rank", rank, "--force_disable_candidates"]
    if base == "relora":
        # ReLoRA's schedule: merge every quarter of the run, jagged cosine with
        # a short re-warm-up (the authors' 250M: every 5000 of 20000 steps, 100).
        # (every cycle whole: the cycle divides the steps; about 4 cycles)
        cycle = min((d for d in range(2, own + 1) if own % d == 0), key=lambda d: abs(own / d - 4))
        return ["--use_lora", "--lora_rank", rank, "--force_disable_candidates", "--relora", cycle,
                "--cycle_length", cycle, "--restart_warmup_steps", max(1, cycle // 50),
                "--scheduler", "cosine_restarts"]
    if base == "galore":
        return ["--optimizer", "galore_adamw", "--rank", rank, "--update_proj_gap", max(1, steps // 10),
                "--galore_scale", 0.25]
    if base == "switchlora":
        return ["--switch_lora", "--lora_rank", rank]
    raise ValueError(f"unknown method {method}")


CPU_METHODS = ["full", "lora", "relora", "galore", "switchlora", "relora_warm", "switchlora_warm",
               "lora+na_lr", "relora+na_lr", "galore+na_lr", "switchlora+na_lr"]

PRESETS = {
    # The whole pipeline in under 3 minutes on 2 cores (make test runs it):
    # every method and row, a 3-point sweep and 2 seeds, on the bundled Brown
    # corpus. Its numbers say nothing about the methods.
    "cpu-tiny": {
        "kind": "cpu",
        "data": "data/brown",
        "sizes": {"tiny": {"config": "configs/llama_tiny.json", "rank": 4}},
        "vocab_size": 0,
        "batch_size": 4, "max_length": 32, "steps": 24, "warmup_steps": 2, "warm_steps": 6,
        "eval_every": 12, "max_eval_batches": 2,
        "lr_multipliers": [0.5, 1.0, 2.0], "max_sweep_extensions": 1, "seeds": [0, 1],
        "methods": CPU_METHODS,
    },
    # The paper's claim at CPU scale: the 9m shape at r = C/8 = 16 (the ratio
    # at which the paper's LoRA falls far behind: 350M, r 128), 2.05M tokens
    # per run, on the larger English corpus (make data-large).
    "cpu-small": {
        "kind": "cpu",
        "data": "data/english",
        "sizes": {"9m": {"config": "configs/llama_9m.json", "rank": 16}},
        "vocab_size": 0,
        "batch_size": 16, "max_length": 128, "steps": 1000, "warmup_steps": 100, "warm_steps": 100,
        "eval_every": 100, "max_eval_batches": 40,
        "lr_multipliers": [1 / 3, 1.0, 3.0], "max_sweep_extensions": 2, "seeds": [0, 1, 2],
        "methods": CPU_METHODS,
    },
}
