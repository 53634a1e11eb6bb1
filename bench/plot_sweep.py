"""Heatmaps of the sweep (bench/sweep.cpp): the best peer's throughput divided
by rsem's in every cell (below 1: rsem is faster), on the quiet machine for 1
and 4 permits, and on the loaded one.

usage: python3 bench/plot_sweep.py target/bench/sweep.csv docs/bench-sweep.png
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


def ratios(rows):
    """{(section, cs_ns, threads, permits): best peer ops/s / rsem ops/s}"""
    cells = defaultdict(dict)
    for r in rows:
        key = (r["section"], float(r["cs_ns"]), int(r["threads"]), int(r["permits"]))
        cells[key][r["implementation"]] = float(r["ops_per_s"])
    out = {}
    for key, impls in cells.items():
        ours = impls.pop("rsem")
        out[key] = max(impls.values()) / ours if ours > 0 else float("inf")
    return out


def heatmap(ax, grid, row_labels, col_labels, title, norm):
    im = ax.imshow(grid, cmap="RdYlGn_r", norm=norm, aspect="auto")
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title(title, fontsize=10)
    return im


def main(src, dst):
    r = ratios(csv.DictReader(open(src)))
    cs = sorted({k[1] for k in r if k[0] == "quiet" and k[1] >= 0})
    threads = sorted({k[2] for k in r if k[0] == "quiet" and k[1] >= 0})
    norm = colors.TwoSlopeNorm(vmin=0.25, vcenter=1.0, vmax=2.0)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [5, 5, 3]})
    cs_labels = [f"{c:g} ns" for c in cs]
    for ax, permits in zip(axes[:2], (1, 4)):
        grid = [[r.get(("quiet", c, t, permits), float("nan")) for t in threads] for c in cs]
        im = heatmap(ax, grid, cs_labels if permits == 1 else [""] * len(cs), threads,
                     f"quiet, {permits} permit{'s' * (permits > 1)}", norm)
        ax.set_xlabel("threads")
    axes[0].set_ylabel("work inside (critical section)")
    loaded = [[r.get(("loaded", 100.0, t, p), float("nan")) for p in (1, 4)] for t in threads]
    heatmap(axes[2], loaded, [f"{t} threads" for t in threads], ["1 permit", "4 permits"],
            "loaded machine, ~100 ns work", norm)
    axes[2].yaxis.tick_right()
    fig.colorbar(im, ax=axes, shrink=0.8, pad=0.12, label="best peer's throughput / rsem's (below 1: rsem faster)")
    fig.suptitle("rsem against the best of glibc sem_t, std::counting_semaphore, mutex+condvar")
    fig.savefig(dst, dpi=100, bbox_inches="tight")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
