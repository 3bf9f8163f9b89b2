#!/usr/bin/python3
"""Reproduce the paper's perplexity table: every method on the same tokens
and seeds, a learning-rate sweep per method, then seeds at the best rate.

  tools/repro.py --preset cpu-small --out results/cpu-small [--lanes 2] [--threads 2]
  tools/repro.py --preset paper-350m          # prints the GPU cluster's commands

It is resumable: a finished run (OUT/runs/<id>/result.json) is never rerun,
an interrupted one resumes from its newest checkpoint (train --autoresume),
so the same command continues where a killed one stopped. Runs go in
parallel lanes of --threads / --lanes OpenMP threads each. At the end (and
with --report after any partial run) it writes OUT/results.json, OUT/table.md
(rows: methods; columns: model sizes; cells: final validation perplexity,
mean ± std over seeds, with trainable parameters, bytes all-reduced per step,
peak memory and tokens/s) and OUT/loss_<size>.png (validation loss against
tokens, every method, seeds shaded). Presets: tools/repro_presets.py.
"""
import argparse
import glob
import hashlib
import json
import math
import os
import signal
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import repro_presets as P  # noqa: E402
import repro_paper  # noqa: E402


def fail(msg):
    sys.exit(f"repro: {msg}")


def write_json(path, obj):
    """Through a temporary file and a rename: never half-written."""
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)


def write_text(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def train_tokens(data):
    """Tokens in a data directory's train shards (llm.c headers: header[2])."""
    files = sorted(glob.glob(os.path.join(data, "*_train_*.bin")))
    if not files:
        fail(f"{data}: no *_train_*.bin shards (make data, or make data-large for data/english)")
    total = 0
    for path in files:
        with open(path, "rb") as f:
            head = f.read(12)
        if len(head) < 12:
            fail(f"{path}: shorter than a shard header")
        total += struct.unpack("<iii", head)[2]
    return total


def fmt_lr(lr):
    return f"{lr:.3g}"


def run_id(size, method, lr, seed):
    """A run's id, also its directory under OUT/runs."""
    return f"{size}/{method}/lr{fmt_lr(lr)}_seed{seed}"


# ------------------------------------------------------------------ the plan

class Run:
    """One training run: its id, flags, and what it waits for."""

    def __init__(self, size, method, lr, seed, flags, warm_from=None, keep=None):
        self.size, self.method, self.lr, self.seed = size, method, lr, seed
        self.flags, self.warm_from, self.keep = flags, warm_from, keep
        self.deps = [warm_from] if warm_from else []
        self.id = run_id(size, method, lr, seed)


class Plan:
    """The preset's runs, decided step by step: a sweep's best rate is known
    only when its runs are done, so the seeds' runs appear then."""

    def __init__(self, preset, out):
        self.p, self.out = preset, out

    def dir(self, run_id):
        return os.path.join(self.out, "runs", run_id)

    def result(self, run_id):
        path = os.path.join(self.dir(run_id), "result.json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        return None

    def common(self, size):
        p, s = self.p, self.p["sizes"][size]
        flags = ["--model_config", s["config"], "--data", p["data"], "--batch_size", p["batch_size"],
                 "--max_length", p["max_length"], "--warmup_steps", p["warmup_steps"],
                 "--eval_every", p["eval_every"], "--max_eval_batches", p["max_eval_batches"]]
        if p["vocab_size"]:
            flags += ["--vocab_size", p["vocab_size"]]
        return flags

    def sweep(self, size, method):
        """(the rates to run at seed 0, the best of them or None while any runs).
        The sweep starts at the recommended rate times each multiplier; when
        the best is at an edge it grows by one more step that way, up to
        `max_sweep_extensions` times, so the optimum is bracketed."""
        mult = self.p["lr_multipliers"]
        ratio = mult[1] / mult[0]
        lrs = [P.RECOMMENDED_LR[P.parent(method)] * m for m in mult]
        for extension in range(self.p["max_sweep_extensions"] + 1):
            results = [self.result(run_id(size, method, lr, 0)) for lr in lrs]
            if any(r is None for r in results):
                return lrs, None
            loss = [r["final_val_loss"] if math.isfinite(r["final_val_loss"]) else math.inf for r in results]
            best = loss.index(min(loss))
            if extension == self.p["max_sweep_extensions"] or 0 < best < len(lrs) - 1:
                return lrs, lrs[best]
            if best == 0:
                lrs.insert(0, lrs[0] / ratio)
            else:
                lrs.append(lrs[-1] * ratio)
        return lrs, None

    def best_lr(self, size, method):
        return self.sweep(size, method)[1]

    def row_lr(self, size, method):
        """The rate a row's seeds run at: a from-scratch method's own sweep's
        best; the derived rows (*_warm, *+na_lr) take their method's, so they
        differ from it in one thing only (and cost no sweep of their own)."""
        return self.best_lr(size, P.parent(method))

    def runs(self):
        """Every run that can be named now (finished or not)."""
        p, out = self.p, []
        for size, s in p["sizes"].items():
            rank, steps, warm = s["rank"], p["steps"], p["warm_steps"]
            full_best = self.best_lr(size, "full")
            keep = warm if any(m.endswith("_warm") for m in p["methods"]) else None
            for method in p["methods"]:
                warm_start = method.split("+")[0].endswith("_warm")
                own = steps - warm if warm_start else steps
                flags = self.common(size) + ["--num_training_steps", own] + \
                    P.method_flags(method, rank, steps, warm if warm_start else 0)
                if method.endswith("+na_lr") or warm_start:  # derived rows: every seed at the parent's best
                    lr = self.row_lr(size, method)
                    if lr is None or full_best is None:
                        continue
                    for seed in p["seeds"]:
                        if warm_start:  # from the full-rank run's weights at step `warm`, same seed
                            src = run_id(size, "full", full_best, seed)
                            out.append(Run(size, method, lr, seed, flags, warm_from=src))
                        else:
                            out.append(Run(size, method, lr, seed, flags + ["--non_adapter_lr", full_best]))
                    continue
                lrs, best = self.sweep(size, method)
                seeds = [(best, seed) for seed in p["seeds"][1:]] if best is not None else []
                for lr, seed in [(lr, 0) for lr in lrs] + seeds:
                    # Full-rank runs keep their checkpoint at `warm`: the warm rows start from it.
                    out.append(Run(size, method, lr, seed, flags, keep=keep if method == "full" else None))
        return out


# ------------------------------------------------------------------ running

def checkpoint_path(run_dir, step):
    return os.path.join(run_dir, "ckpt", f"checkpoint_{step:08d}.bin")  # train's name


def summarise(run, run_dir, stdout, wall, rss_mb, tokens_per_step, tokens_before):
    """result.json from the run's metrics.jsonl and its header line."""
    lines = [json.loads(l) for l in open(os.path.join(run_dir, "ckpt", "metrics.jsonl")) if l.strip()]
    final = [l for l in lines if l.get("final")]
    if not final:
        raise RuntimeError(f"{run.id}: no final evaluation in its metrics.jsonl")
    steps = [l for l in lines if "loss" in l]
    trainable = None
    for line in stdout.splitlines():  # "model ...: ... | params: total N, trainable N, ..."
        if line.startswith("model ") and "trainable " in line:
            trainable = int(line.split("trainable ")[1].split(",")[0])
    tps = [l["tokens_per_s"] for l in steps[3:]] or [l["tokens_per_s"] for l in steps]
    return {
        "id": run.id, "size": run.size, "method": run.method, "lr": run.lr, "seed": run.seed,
        "final_val_loss": final[-1]["val_loss"], "final_val_ppl": final[-1]["val_ppl"],
        "tokens": tokens_before + steps[-1]["step"] * tokens_per_step,
        "val_curve": [(tokens_before + l["step"] * tokens_per_step, l["val_loss"]) for l in lines if "val_loss" in l],
        "trainable": trainable,
        # What one rank sends per step on two or more: every trainable gradient, fp32.
        "allreduce_bytes_per_step": 4 * trainable if trainable else None,
        "peak_rss_mb": rss_mb, "tokens_per_s": statistics.median(tps) if tps else None,
        "wall_s": wall, "skipped_steps": sum(1 for l in steps if l.get("skipped")),
    }


class Lanes:
    """Up to `lanes` train processes at once, each with its own threads."""

    def __init__(self, plan, binary, lanes, threads):
        self.plan, self.bin, self.lanes = plan, binary, lanes
        self.threads = max(1, threads // lanes)
        self.running = {}  # pid -> (run, popen, start, log file)

    def start(self, run):
        run_dir = self.plan.dir(run.id)
        os.makedirs(run_dir, exist_ok=True)
        p = self.plan.p
        # A run that keeps the warm start of the *_warm rows saves exactly at that step.
        save_every = run.keep or max(1, p["steps"] // 4)
        flags = [str(x) for x in run.flags] + ["--lr", fmt_lr(run.lr), "--seed", str(run.seed),
                                               "--save_dir", os.path.join(run_dir, "ckpt"), "--autoresume",
                                               "--save_every", str(save_every),
                                               "--keep_checkpoints", "0" if run.keep else "1"]
        if run.warm_from:
            flags += ["--warmed_up_model", checkpoint_path(self.plan.dir(run.warm_from), p["warm_steps"])]
        cmd = [self.bin, "train"] + flags
        log = open(os.path.join(run_dir, "train.log"), "a")
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), OMP_WAIT_POLICY="passive")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.running[proc.pid] = (run, proc, time.time(), log, cmd)
        print(f"[start] {run.id}  ({len(self.running)} running)", flush=True)

    def wait_one(self):
        """Waits for a run to end; writes its result.json, or raises naming its log."""
        pid, status, usage = os.wait4(-1, 0)
        if pid not in self.running:
            return
        run, proc, t0, log, cmd = self.running.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.close()
        run_dir = self.plan.dir(run.id)
        log_path = os.path.join(run_dir, "train.log")
        if proc.returncode != 0:
            tail = open(log_path).read().splitlines()[-3:]
            raise RuntimeError(f"{run.id} failed (exit {proc.returncode}); {log_path}:\n  " + "\n  ".join(tail))
        stdout = open(log_path).read()
        p = self.plan.p
        per_step = p["batch_size"] * p["max_length"]
        before = p["warm_steps"] * per_step if run.warm_from else 0  # the full-rank run's, before the warm start
        res = summarise(run, run_dir, stdout, time.time() - t0, usage.ru_maxrss / 1024.0, per_step, before)
        res["command"] = " ".join(cmd)
        write_json(os.path.join(run_dir, "result.json"), res)
        # Keep what rebuilds the table (result.json, metrics.jsonl, train.log)
        # and the one checkpoint a warm start needs; drop the others.
        for ck in glob.glob(os.path.join(run_dir, "ckpt", "checkpoint_*.bin")):
            if not (run.keep and ck == checkpoint_path(run_dir, run.keep)):
                os.remove(ck)
        if os.path.exists(os.path.join(run_dir, "ckpt", "latest")):  # it names a removed checkpoint
            os.remove(os.path.join(run_dir, "ckpt", "latest"))
        print(f"[done ] {run.id}: val ppl {res['final_val_ppl']:.2f}, {res['tokens_per_s'] or 0:.0f} tok/s, "
              f"{res['wall_s']:.0f} s", flush=True)

    def stop(self):
        for run, proc, *_ in self.running.values():
            proc.send_signal(signal.SIGTERM)  # train saves a checkpoint and exits: resumable
        for run, proc, *_ in self.running.values():
            proc.wait()


def run_all(plan, lanes):
    while True:
        todo = [r for r in plan.runs() if plan.result(r.id) is None]
        running = {r.id for r, *_ in lanes.running.values()}
        ready = [r for r in todo if r.id not in running and all(plan.result(d) for d in r.deps)]
        # An interrupted run first (it holds a checkpoint), then seed 0 of
        # every row before any row's seed 1: a stopped preset's table has
        # every row it can, each with as many seeds as it can.
        ready.sort(key=lambda r: (not os.path.exists(os.path.join(plan.dir(r.id), "ckpt", "latest")), r.seed))
        while ready and len(lanes.running) < lanes.lanes:
            lanes.start(ready.pop(0))
        if not lanes.running:
            if todo:
                fail("runs wait for runs that cannot start: " + ", ".join(r.id for r in todo))
            return
        lanes.wait_one()


# ------------------------------------------------------------------ the report

def report(plan, preset_name):
    p = plan.p
    results = []
    for path in sorted(glob.glob(os.path.join(plan.out, "runs", "*", "*", "*", "result.json"))):
        with open(path) as f:
            results.append(json.load(f))
    rows = {}
    for size in p["sizes"]:
        for method in p["methods"]:
            best = plan.row_lr(size, method)
            at_best = [r for r in results if r["size"] == size and r["method"] == method and
                       best is not None and fmt_lr(r["lr"]) == fmt_lr(best)]
            rows[(size, method)] = {"lr": best, "runs": at_best}
    summary = {"preset": preset_name, "cells": {}}
    for (size, method), row in rows.items():
        ppl = [r["final_val_ppl"] for r in row["runs"]]
        loss = [r["final_val_loss"] for r in row["runs"]]
        cell = {"lr": row["lr"], "seeds": [r["seed"] for r in row["runs"]], "ppl": ppl, "val_loss": loss}
        if ppl:
            cell["ppl_mean"] = statistics.mean(ppl)
            cell["ppl_std"] = statistics.stdev(ppl) if len(ppl) > 1 else 0.0
            r0 = row["runs"][0]
            cell.update({k: r0[k] for k in ("trainable", "allreduce_bytes_per_step", "tokens")})
            cell["peak_rss_mb"] = max(r["peak_rss_mb"] for r in row["runs"])
            cell["tokens_per_s"] = statistics.median([r["tokens_per_s"] for r in row["runs"] if r["tokens_per_s"]])
        summary["cells"][f"{size}/{method}"] = cell
    summary["runs"] = results
    write_json(os.path.join(plan.out, "results.json"), summary)

    sizes = list(p["sizes"])
    lines = [f"Final validation perplexity, mean ± std over seeds (n), at each method's best rate; "
             f"preset `{preset_name}`.", "",
             "| method | " + " | ".join(f"{s} (r {p['sizes'][s]['rank']})" for s in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for method in p["methods"]:
        cells = []
        for s in sizes:
            c = summary["cells"][f"{s}/{method}"]
            cells.append(f"{c['ppl_mean']:.2f} ± {c['ppl_std']:.2f} ({len(c['ppl'])})" if c["ppl"] else "—")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for s in sizes:
        lines += ["", f"{s}: cost per run", "",
                  "| method | best lr | trainable | all-reduce / step (2+ ranks) | peak RSS | tokens/s |",
                  "|---|---|---|---|---|---|"]
        for method in p["methods"]:
            c = summary["cells"][f"{s}/{method}"]
            if not c["ppl"]:
                lines.append(f"| {method} | — | — | — | — | — |")
                continue
            lines.append(f"| {method} | {fmt_lr(c['lr'])} | {c['trainable'] / 1e6:.2f} M | "
                         f"{c['allreduce_bytes_per_step'] / 1e6:.2f} MB | {c['peak_rss_mb']:.0f} MB | "
                         f"{c['tokens_per_s']:.0f} |")
    for s in sizes:  # the sweeps: is each best rate inside its sweep, and by how much?
        lines += ["", f"{s}: learning-rate sweeps (seed 0, final validation perplexity; ** = the rate chosen)", "",
                  "| method | rate: perplexity |", "|---|---|"]
        for method in p["methods"]:
            if method != P.parent(method):
                continue  # derived rows run at their parent's rate
            lrs, best = plan.sweep(s, method)
            cells = []
            for lr in lrs:
                r = plan.result(run_id(s, method, lr, 0))
                mark = "**" if best is not None and fmt_lr(lr) == fmt_lr(best) else ""
                cells.append(f"{mark}{fmt_lr(lr)}: {r['final_val_ppl']:.2f}{mark}" if r else f"{fmt_lr(lr)}: —")
            lines.append(f"| {method} | " + ", ".join(cells) + " |")
    lines += ["", "Differences of mean final validation loss (a row minus full rank, and minus LoRA), "
              "with two standard errors of the difference; * marks a difference beyond 2 SE.", "",
              "| size | method | − full | − LoRA |", "|---|---|---|---|"]

    def diff(a, b):
        if len(a["val_loss"]) < 2 or len(b["val_loss"]) < 2:
            return "—"
        d = statistics.mean(a["val_loss"]) - statistics.mean(b["val_loss"])
        se = math.sqrt(statistics.variance(a["val_loss"]) / len(a["val_loss"]) +
                       statistics.variance(b["val_loss"]) / len(b["val_loss"]))
        return f"{d:+.4f} ± {2 * se:.4f}{' *' if abs(d) > 2 * se else ''}"
    for s in sizes:
        full, lora = summary["cells"].get(f"{s}/full"), summary["cells"].get(f"{s}/lora")
        for method in p["methods"]:
            c = summary["cells"][f"{s}/{method}"]
            if method in ("full",) or not c["ppl"]:
                continue
            lines.append(f"| {s} | {method} | {diff(c, full) if full else '—'} | "
                         f"{diff(c, lora) if lora and method != 'lora' else '—'} |")
    write_text(os.path.join(plan.out, "table.md"), "\n".join(lines) + "\n")
    plot(plan, summary)
    print("\n".join(lines))


def plot(plan, summary):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"repro: no plots ({e}: install python3-matplotlib)")
        return
    for size in plan.p["sizes"]:
        fig, ax = plt.subplots(figsize=(8, 5))
        for method in plan.p["methods"]:
            c = summary["cells"][f"{size}/{method}"]
            runs = [r for r in summary["runs"] if r["size"] == size and r["method"] == method and
                    c["lr"] is not None and fmt_lr(r["lr"]) == fmt_lr(c["lr"])]
            if not runs:
                continue
            n = min(len(r["val_curve"]) for r in runs)
            xs = [runs[0]["val_curve"][i][0] / 1e6 for i in range(n)]
            ys = [[r["val_curve"][i][1] for r in runs] for i in range(n)]
            mean = [statistics.mean(y) for y in ys]
            line, = ax.plot(xs, mean, label=f"{method} (lr {fmt_lr(c['lr'])})",
                            linestyle="--" if "+na_lr" in method else "-")
            ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], color=line.get_color(), alpha=0.2)
        ax.set_xlabel("tokens (millions)")
        ax.set_ylabel("validation loss")
        ax.set_title(f"{size}: validation loss, mean over seeds, band = min..max")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        out = os.path.join(plan.out, f"loss_{size}.png")
        fig.savefig(out + ".tmp", format="png", dpi=110)
        os.replace(out + ".tmp", out)
        plt.close(fig)


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = sorted(list(P.PRESETS) + list(repro_paper.PRESETS))
    ap.add_argument("--preset", required=True, help=" | ".join(names))
    ap.add_argument("--out", help="the results directory (CPU presets)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "switchlora"))
    ap.add_argument("--lanes", type=int, default=1, help="runs at once")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="OpenMP threads in all, split over lanes")
    ap.add_argument("--data", help="the prepared corpus, instead of the preset's (part of the results' identity)")
    ap.add_argument("--report", action="store_true", help="only rebuild results.json, table.md and the plots")
    ap.add_argument("--world", type=int, default=8, help="paper presets: GPUs per run")
    a = ap.parse_args()
    if a.preset in repro_paper.PRESETS:
        repro_paper.print_commands(a.preset, a.world)
        return
    if a.preset not in P.PRESETS:
        fail(f"unknown preset {a.preset!r}; the presets are {', '.join(names)}")
    if not a.out:
        fail("--out DIR is required for a CPU preset")
    if a.lanes < 1 or a.threads < 1:
        fail("--lanes and --threads must be >= 1")
    # Runs start in the repository (the presets' paths are relative to it);
    # the user's paths are taken from where the user is.
    a.out, a.bin = os.path.abspath(a.out), os.path.abspath(a.bin)
    preset = dict(P.PRESETS[a.preset])
    if a.data:
        preset["data"] = os.path.abspath(a.data)
    # A results directory belongs to one preset, as it was defined: another
    # preset (or an edited one) is refused, never mixed in or overwritten.
    ident = {"preset": a.preset, "definition": hashlib.sha256(json.dumps(preset, sort_keys=True).encode()).hexdigest()}
    ident_path = os.path.join(a.out, "preset.json")
    if os.path.exists(ident_path):
        with open(ident_path) as f:
            have = json.load(f)
        if have != ident:
            fail(f"{a.out} holds results of preset {have.get('preset')!r}"
                 f"{' (as defined then)' if have.get('preset') == a.preset else ''}, not of {a.preset!r} as "
                 f"defined now: choose another --out")
    elif os.path.isdir(a.out) and os.listdir(a.out):
        fail(f"{a.out} is not empty and is not a results directory (no preset.json): choose another --out")
    plan = Plan(preset, a.out)
    if not a.report:
        if not os.access(a.bin, os.X_OK):
            fail(f"--bin {a.bin}: not an executable (make build)")
        need = preset["steps"] * preset["batch_size"] * (preset["max_length"] + 1)
        have = train_tokens(preset["data"] if os.path.isabs(preset["data"]) else os.path.join(ROOT, preset["data"]))
        if have < need:
            fail(f"{preset['data']} has {have} train tokens; preset {a.preset} reads {need} per run "
                 f"(no token twice): a larger corpus or fewer steps")
        os.makedirs(a.out, exist_ok=True)
        write_json(ident_path, ident)
        lanes = Lanes(plan, a.bin, a.lanes, a.threads)
        try:
            run_all(plan, lanes)
        except (KeyboardInterrupt, RuntimeError) as e:
            lanes.stop()
            fail(f"{e}\nstopped; the same command resumes" if isinstance(e, RuntimeError) else
                 "interrupted; the same command resumes")
    report(plan, a.preset)


if __name__ == "__main__":
    main()
