#!/usr/bin/python3
"""switchlora plot: training and validation loss against tokens for one or
several runs; for SwitchLoRA runs a second panel with the switch interval
and the vectors switched per step.

  plot_runs.py DATA.json OUT.png

DATA.json: {"runs": [{"label": str,
                      "train": {"tokens": [...], "loss": [...]},
                      "val": {"tokens": [...], "loss": [...]},
                      "switch": {"tokens": [...], "interval": [...], "switched": [...]} or null}]}
"""
from plot_common import save, start


def smooth(y, n):
    """Trailing mean over up to n points (the raw per-step loss is noisy)."""
    import numpy as np
    y = np.asarray(y, dtype=float)
    if n <= 1 or len(y) < 2:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    k = np.minimum(np.arange(1, len(y) + 1), n)
    return (c[1:] - c[np.arange(1, len(y) + 1) - k]) / k


def main():
    data, out, plt = start("plot_runs.py")
    runs = data["runs"]
    switching = [r for r in runs if r.get("switch")]
    panels = 2 if switching else 1
    fig, axes = plt.subplots(panels, 1, figsize=(8, 4 + 2.5 * (panels - 1)), dpi=120, sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [2, 1][:panels]})
    ax = axes[0][0]
    for r in runs:
        t = r["train"]
        window = max(1, len(t["loss"]) // 50)
        (line,) = ax.plot(t["tokens"], smooth(t["loss"], window), linewidth=1, alpha=0.8,
                          label=f"{r['label']} train")
        if r["val"]["tokens"]:
            ax.plot(r["val"]["tokens"], r["val"]["loss"], "o-", color=line.get_color(), markersize=4,
                    label=f"{r['label']} validation")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("Loss against tokens seen")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    if switching:
        ax2 = axes[1][0]
        right = ax2.twinx()
        for r in switching:
            s = r["switch"]
            (line,) = ax2.plot(s["tokens"], s["interval"], linewidth=1.5, label=f"{r['label']} interval")
            window = max(1, len(s["switched"]) // 50)
            right.plot(s["tokens"], smooth(s["switched"], window), color=line.get_color(), linestyle=":",
                       linewidth=1, label=f"{r['label']} switched")
        ax2.set_ylabel("switch interval (steps)")
        right.set_ylabel("vectors switched per step (dotted)")
        ax2.grid(True, alpha=0.3)
        ax2.legend(fontsize=7, loc="upper left")
    axes[-1][0].set_xlabel("tokens")
    fig.tight_layout()
    save(fig, out)


if __name__ == "__main__":
    main()
