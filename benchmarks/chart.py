#!/usr/bin/python3
"""Draws benchmarks/peers_run.sh's chart: req/s and server CPU time per
request for every server, one pair of panels per case, Piston's servers
highlighted.

  chart.py DATA.tsv OUT.png

DATA.tsv has a header line and the columns case, server, req_per_s,
cpu_us_per_req, piston (1 for Piston's servers), as peers_run.sh writes it.
Uses matplotlib (Debian's python3-matplotlib) without a display.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

PISTON = "#d9480f"
PEER = "#868e96"
FLOOR = "#1c7ed6"


def main():
    if len(sys.argv) != 3:
        print("usage: chart.py DATA.tsv OUT.png", file=sys.stderr)
        return 2
    cases = {}
    with open(sys.argv[1], newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            cases.setdefault(row["case"], []).append(row)
    if not cases:
        print("chart.py: no rows in " + sys.argv[1], file=sys.stderr)
        return 1

    heights = [max(len(rows), 2) * 0.32 + 0.9 for rows in cases.values()]
    fig, axes = plt.subplots(len(cases), 2, figsize=(13, sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for (case, rows), (ax_rate, ax_cpu) in zip(cases.items(), axes):
        names = [r["server"] for r in rows]
        colours = [PISTON if r["piston"] == "1" else FLOOR if r["server"] == "floor" else PEER
                   for r in rows]
        ys = range(len(rows))
        for ax, key, title in ((ax_rate, "req_per_s", "req/s (higher is better)"),
                               (ax_cpu, "cpu_us_per_req",
                                "server CPU µs per request (lower is better)")):
            values = [float(r[key]) for r in rows]
            ax.barh(ys, values, color=colours)
            ax.set_yticks(list(ys))
            ax.set_yticklabels(names, fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{case}: {title}", fontsize=9, loc="left")
            ax.tick_params(axis="x", labelsize=7)
            top = max(values) if values else 1
            for y, v in zip(ys, values):
                label = f"{v:,.0f}" if key == "req_per_s" else f"{v:.2f}"
                ax.text(v + top * 0.01, y, label, va="center", fontsize=7)
            ax.set_xlim(0, top * 1.18)
    fig.suptitle("Piston (orange) against its peers and the floor (blue, benchmarks/floor.c): "
                 "one server core, wrk -t1 -c64 on the other", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(sys.argv[2], dpi=90)
    return 0


if __name__ == "__main__":
    sys.exit(main())
