"""Plots contended throughput against thread count from bench's CSV.

usage: python3 bench/plot.py target/bench/results.csv docs/bench-contended.png
"""
import csv
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    # series[(permits, implementation)] = [(threads, median ops/s, min, max)]
    series = defaultdict(list)
    for row in csv.DictReader(open(src)):
        m = re.match(r"contended (\d+) threads, (\d+) permit", row["scenario"])
        if not m:
            continue
        threads, permits = int(m.group(1)), int(m.group(2))
        series[(permits, row["implementation"])].append(
            (threads, float(row["median"]) / 1e6, float(row["min"]) / 1e6, float(row["max"]) / 1e6)
        )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, permits in zip(axes, (1, 4)):
        for (p, impl), points in sorted(series.items()):
            if p != permits:
                continue
            points.sort()
            xs = [t for t, *_ in points]
            med = [m for _, m, _, _ in points]
            lo = [m - a for _, m, a, _ in points]
            hi = [b - m for _, m, _, b in points]
            style = dict(linewidth=2.5) if impl == "rsem" else dict(linewidth=1.2)
            ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=3, label=impl, **style)
        ax.set_xscale("log", base=2)
        ax.set_xticks([2, 4, 8, 16])
        ax.set_xticklabels(["2", "4", "8", "16"])
        ax.set_xlabel("threads")
        ax.set_title(f"{permits} permit{'s' if permits > 1 else ''}, ~100 ns work inside")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("acquire+release per second (millions, median, min-max)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Contended throughput (higher is better)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
