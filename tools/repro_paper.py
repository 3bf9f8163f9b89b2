"""The paper's runs (tools/repro.py --preset paper-*): the commands a GPU
cluster runs, from the authors' published scripts (asfsdsf/SwitchLoRA,
llama/examples/), with the paper's own number beside each where a stored
source shows it.

What is published, and so what these commands follow exactly:
  350M   basic/run_{full,lora,switchlora}_350m.sh: batch 72 per GPU x 8 GPUs =
         1152 sequences of 512 tokens, 40000 steps, eval every 1000; lr full
         1e-3, LoRA 1e-2 (r 256, no dropout), SwitchLoRA 2e-2 (r 256);
         galore/run_galore_350m.sh: 256 tokens, batch 128 x 4 = 512, 60000
         steps, warm-up 6000, lr 1e-2, scale 0.25, r 256, gap 200.
  250M   relora/: full rank at 5e-4 for 20000 steps; ReLoRA from its step-1000
         weights, lr 1e-3, merges every 5000, re-warm-up 100, 20000 steps of its own;
         SwitchLoRA from the same weights, lr 1e-2, r 128, 20000 steps.
  130M, 1.3B: no script is published. The authors' README says to change
         --model_config, --lr, --total_batch_size and --lora_rank; these
         commands keep 350M's recipe with r = C/4 (350M's ratio), marked
         "assumed" where they do.
The paper's numbers: only its abstract's 1.3B pair (full rank 15.23,
SwitchLoRA 15.01) is in the sources this project can read; every other cell
prints "n/a".
"""

DATA = ("switchlora prepare --jsonl 'c4/en/c4-*.json.gz' --sentencepiece t5/spiece.model --out data/c4"
        "   # C4 en (allenai/c4), T5's tokenizer; the validation files are the val split")

BASIC = {"--batch_size": 72, "--total_batch_size": 1152, "--max_length": 512, "--num_training_steps": 40000,
         "--eval_every": 1000, "--save_every": 2000, "--keep_checkpoints": 3}

# Per preset: (model config, rank, rank published?, {method: (flags, lr, paper ppl or None)}).
PRESETS = {
    "paper-130m": ("configs/llama_130m.json", 192, False, {
        "full": ({}, 1e-3, None), "lora": ({"--use_lora": None, "--force_disable_candidates": None}, 1e-2, None),
        "switchlora": ({"--switch_lora": None}, 2e-2, None)}),
    "paper-250m": ("configs/llama_250m.json", 128, True, {
        "full": ({"--num_training_steps": 20000, "--save_every": 1000, "--keep_checkpoints": 0}, 5e-4, None),
        # ReLoRA's repo's adapter defaults (alpha 32, dropout 0.1); its 21000
        # steps count the warm-up's 1000, which --warmed_up_model does not.
        "relora_warm": ({"--use_lora": None, "--force_disable_candidates": None, "--relora": 5000,
                         "--cycle_length": 5000, "--lora_alpha": 32, "--lora_dropout": 0.1,
                         "--restart_warmup_steps": 100, "--scheduler": "cosine_restarts",
                         "--warmup_steps": 500, "--num_training_steps": 20000,
                         "--warmed_up_model": "runs/paper-250m/full/checkpoint_00001000.bin"}, 1e-3, None),
        "switchlora_warm": ({"--switch_lora": None, "--scheduler": "cosine_with_min_lr", "--num_training_steps": 20000,
                             # the authors' --zero_switch_state --zero_switch_step_state: our default
                             "--warmed_up_model": "runs/paper-250m/full/checkpoint_00001000.bin"}, 1e-2, None)}),
    "paper-350m": ("configs/llama_350m.json", 256, True, {
        "full": ({}, 1e-3, None),
        "lora": ({"--use_lora": None, "--lora_dropout": 0.0, "--force_disable_candidates": None}, 1e-2, None),
        "switchlora": ({"--switch_lora": None}, 2e-2, None),
        "galore": ({"--optimizer": "galore_adamw", "--rank": 256, "--update_proj_gap": 200, "--galore_scale": 0.25,
                    "--max_length": 256, "--batch_size": 128, "--total_batch_size": 512,
                    "--num_training_steps": 60000, "--warmup_steps": 6000, "--weight_decay": 0.0,
                    "--save_every": 5000}, 1e-2, None)}),
    "paper-1b": ("configs/llama_1b.json", 512, False, {
        "full": ({}, 1e-3, 15.23),
        "lora": ({"--use_lora": None, "--force_disable_candidates": None}, 1e-2, None),
        "switchlora": ({"--switch_lora": None}, 2e-2, 15.01)}),
}


def print_commands(name, world):
    config, rank, published, methods = PRESETS[name]
    size = name.split("-")[1]
    print(f"# {name}: the paper's runs on {world} GPUs ({'ranks from the authors scripts' if published else 'rank assumed: r = C/4, no published script'})")
    print(f"# data, once:  {DATA}")
    for method, (own, lr, paper) in methods.items():
        flags = dict(BASIC)
        flags.update({"--model_config": config, "--data": "data/c4", "--lr": lr, "--dtype": "bf16", "--device": "cuda",
                      "--save_dir": f"runs/paper-{size}/{method.replace('_warm', '')}", "--autoresume": None})
        if method not in ("full", "galore"):
            flags["--lora_rank"] = rank
        flags.update(own)
        # The scripts' per-GPU batch, accumulating to the total; fewer per GPU
        # where `world` GPUs would pass the total in one step.
        if flags["--batch_size"] * world > flags["--total_batch_size"]:
            flags["--batch_size"] = max(1, flags["--total_batch_size"] // world)
        line = " ".join(k if v is None else f"{k} {v}" for k, v in flags.items())
        number = f"paper ppl {paper}" if paper is not None else "paper ppl n/a (not in the sources read)"
        print(f"\n# {method}: {number}")
        print(f"mpirun -np {world} build/switchlora train {line}")
