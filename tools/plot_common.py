"""What tools/plot_*.py share: the command line (DATA.json OUT.png), a
headless matplotlib, and writing the PNG through a temporary file and a
rename, so a failed plot never leaves a half-written file."""
import json
import os
import sys


def start(script):
    """(data, out_path, pyplot) for `script DATA.json OUT.png`; exits with a
    one-line message when the arguments or matplotlib are missing."""
    if len(sys.argv) != 3:
        sys.exit(f"usage: {script} DATA.json OUT.png")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        sys.exit(f"{script}: {e}: install python3-matplotlib (make deps-test)")
    with open(sys.argv[1]) as f:
        return json.load(f), sys.argv[2], plt


def save(fig, out):
    tmp = out + ".tmp"
    fig.savefig(tmp, format="png")
    os.replace(tmp, out)
