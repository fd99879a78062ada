#!/usr/bin/env python3
"""Draws the results of `cargo bench --bench compare` as bar charts.

Usage: python3 benches/compare_chart.py target/compare/compare.csv target/compare/compare.png

One panel per row of the table (its own scale and unit), one bar per server
at the median, with the single runs as dots; ferrows / peer ratios are shown
under each peer's bar.
"""

import csv
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

COLORS = {
    "ferrows": "#d95f02",
    "tokio-tungstenite": "#7570b3",
    "fastwebsockets": "#1b9e77",
    "raw": "#888888",
}


def number(text):
    return float(text) if text not in ("", "na") else None


def label(value, unit):
    if unit == "KiB/conn":
        return f"{value:.3f}"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def ratio_text(ratio):
    return f"{ratio:.3f}x" if ratio < 0.1 else f"{ratio:.2f}x"


def main(csv_path, png_path):
    rows = {}
    with open(csv_path, newline="") as f:
        for rec in csv.DictReader(f):
            rows.setdefault((rec["row"], rec["title"], rec["unit"]), []).append(rec)
    if not rows:
        sys.exit(f"{csv_path}: no results")
    cols = 3 if len(rows) > 4 else len(rows)
    lines = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(5.2 * cols, 3.6 * lines), squeeze=False)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for ax, ((_, title, unit), recs) in zip(axes.flat, rows.items()):
        names = [r["server"] for r in recs]
        medians = [number(r["median"]) or 0.0 for r in recs]
        bars = ax.bar(names, medians, color=[COLORS.get(n, "#444444") for n in names])
        for i, r in enumerate(recs):
            runs = [float(v) for v in r["runs"].split(";") if v]
            # At the bar's right edge, clear of the value over its middle.
            ax.plot([i + 0.3] * len(runs), runs, "k.", markersize=3)
        for bar, value, r in zip(bars, medians, recs):
            text = label(value, unit)
            ratio = number(r["ferrows_ratio"])
            if r["server"] != "ferrows" and ratio is not None:
                text += f"\nf/{ratio_text(ratio)}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
        positive = [v for v in medians if v > 0]
        if positive and max(positive) / min(positive) > 50:
            # Values two orders apart (idle memory): on a linear scale the small ones vanish.
            ax.set_yscale("log")
            ax.set_title(title + " (log scale)", fontsize=9)
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _, unit=unit: label(v, unit)))
            ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(axis="x", labelsize=7, rotation=15)
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.25)
    fig.suptitle("ferrows beside other echo servers (medians; dots: single runs; f/x = ferrows / peer)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare_chart.py COMPARE.CSV OUT.PNG")
    main(sys.argv[1], sys.argv[2])
