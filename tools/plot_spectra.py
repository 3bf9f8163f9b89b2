#!/usr/bin/python3
"""switchlora inspect --plot: the singular values of the learned update
dW = W_eff(t) - W_eff(0) of one layer kind, for one or several checkpoints.

  plot_spectra.py DATA.json OUT.png

DATA.json: {"kind": "q", "runs": [{"label": str, "lora_rank": int,
            "layers": [{"name": str, "sigma": [float, ...]}]}]}
Each run is a line: sigma_i / sigma_1 averaged over its layers of that kind
(the band spans the smallest and largest over those layers), on a log scale;
dashed and dotted lines mark each LoRA rank r and 2r: plain LoRA's spectrum
ends by r (B_0 = 0) or 2r (SwitchLoRA's init, where B_0 A_0 != 0).
"""
from plot_common import save, start


def main():
    data, out, plt = start("plot_spectra.py")
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ranks = set()
    for run in data["runs"]:
        spectra = [np.asarray(l["sigma"], dtype=float) for l in run["layers"]]
        if not spectra:
            continue
        n = min(len(s) for s in spectra)
        rel = np.stack([s[:n] / s[0] if s[0] > 0 else np.zeros(n) for s in spectra])
        rel = np.maximum(rel, 1e-12)  # log scale: exact zeros drawn at the floor
        i = np.arange(1, n + 1)
        (line,) = ax.plot(i, rel.mean(axis=0), label=f"{run['label']} ({len(spectra)} layers)")
        ax.fill_between(i, rel.min(axis=0), rel.max(axis=0), color=line.get_color(), alpha=0.2)
        if run.get("lora_rank", 0) > 0:
            ranks.add(run["lora_rank"])
    for r in sorted(ranks):
        # plain LoRA's dW = s (B_t A_t - B_0 A_0) has rank <= 2r (<= r when B_0 = 0)
        ax.axvline(r, color="gray", linestyle="--", linewidth=1)
        ax.text(r, 1.0, f" r = {r}", color="gray", va="top")
        ax.axvline(2 * r, color="gray", linestyle=":", linewidth=1)
        ax.text(2 * r, 1.0, " 2r", color="gray", va="top")
    ax.set_yscale("log")
    ax.set_xlabel("singular value index i")
    ax.set_ylabel("sigma_i / sigma_1")
    ax.set_title(f"Learned update dW = W_eff(t) - W_eff(0), {data['kind']} layers")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, out)


if __name__ == "__main__":
    main()
