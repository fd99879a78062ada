#!/usr/bin/env python3
"""Draws the samples of `benches/soak` as a chart over time.

Usage: python3 benches/soak_chart.py target/soak/soak.csv target/soak/soak.png

Three panels sharing the time axis: the server's resident memory, its open
descriptors and WebSocket sessions, and the messages per second it handled
(sent and received, from GET /metrics), with errors marked. The load's end
and the point where the RSS check starts (one fifth of the run) are drawn as
vertical lines.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {key: [] for key in rows[0]} if rows else {}
    for row in rows:
        for key, value in row.items():
            try:
                columns[key].append(float(value))
            except (TypeError, ValueError):
                columns[key].append(value)
    return columns


def draw(csv_path, png_path, fifth=None, load_end=None, title="ferrows soak"):
    c = read(csv_path)
    t = c["t"]
    fig, (rss, fds, rate) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    rss.plot(t, [v / 1024 for v in c["rss_kib"]], color="#d95f02")
    rss.set_ylabel("RSS (MiB)")
    rss.set_ylim(bottom=0)
    fds.plot(t, c["fds"], label="descriptors", color="#7570b3")
    fds.plot(t, c["sessions"], label="WebSocket sessions", color="#1b9e77")
    fds.set_ylabel("open")
    fds.set_ylim(bottom=0)
    fds.legend(loc="lower center")
    rate.plot(t, [v / 1000 for v in c["msgs_per_sec"]], color="#444444", label="messages/s")
    rate.set_ylabel("messages/s (thousands)")
    rate.set_ylim(bottom=0)
    errors = [(x, y / 1000) for x, y, e in zip(t, c["msgs_per_sec"], c["errors"]) if e > 0]
    if errors:
        rate.scatter([x for x, _ in errors], [y for _, y in errors], color="red", label="errors", zorder=3)
        rate.legend(loc="lower center")
    rate.set_xlabel("seconds")
    for ax in (rss, fds, rate):
        ax.grid(True, alpha=0.3)
        if fifth is not None:
            ax.axvline(fifth, color="#999999", linestyle=":", linewidth=1)
        if load_end is not None:
            ax.axvline(load_end, color="#999999", linestyle="--", linewidth=1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    draw(sys.argv[1], sys.argv[2])
