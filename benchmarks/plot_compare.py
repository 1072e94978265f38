"""Chart and table of docs/performance.md from the JSON of ``compare.py --json``.

    python benchmarks/compare.py --json docs/performance.json
    python benchmarks/plot_compare.py docs/performance.json

writes ``docs/performance.png`` (a grouped bar chart: one group per workload,
one bar per implementation, each bar the implementation's speed divided by the
fastest of the implementations other than zarrsync, so rows in MB/s, ops/s and
steps/s share one axis) and rewrites the part of ``docs/performance.md``
between ``<!-- table:start -->`` and ``<!-- table:end -->``.

``--also run2.json run3.json`` adds the ratios of further runs of the same
code: a table of every run's ratio per workload and their median, because
one run's ratios move by tens of percent on a shared machine.
"""

import argparse
import json
import os
import statistics
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import footnotes, limits_table, machine_line, markdown_table

START, END = "<!-- table:start -->", "<!-- table:end -->"
COLORS = {"zarrsync": "#d95f02", "zarr-python": "#7570b3", "zarr-python fused": "#e7298a",
          "zarrs": "#1b9e77", "tensorstore": "#66a61e"}
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def relative_speeds(results):
    """{implementation: [speed / fastest other, or None]} per row, in row order."""
    names = results["implementations"]
    rel = {name: [] for name in names}
    for row in results["rows"]:
        others = [v for k, v in row["speeds"].items() if k != "zarrsync" and v is not None]
        ref = max(others) if others else None
        for name in names:
            v = row["speeds"].get(name)
            rel[name].append(v / ref if v is not None and ref else None)
    return rel


def pretty(label):
    return label.replace("^3", "\u00b3").replace("^2", "\u00b2")


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    names = results["implementations"]
    rows = results["rows"]
    rel = relative_speeds(results)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(8, 1.0 * len(rows) + 2), 5.5), layout="constrained")
    present = [v for vals in rel.values() for v in vals if v]
    lo = min(present + [1.0]) / 1.6
    hi = max(present + [1.0]) * 1.6
    for i, name in enumerate(names):
        xs = [r + (i - (len(names) - 1) / 2) * width for r in range(len(rows))]
        for x, v, row in zip(xs, rel[name], rows):
            if v is None:  # "error": the cell failed (compare.py's notes say why)
                ax.text(x, lo * 1.05, "error" if name in row.get("errors", {}) else "n/a",
                        rotation=90, ha="center", va="bottom", fontsize=7, color="0.4")
        ax.bar([x for x, v in zip(xs, rel[name]) if v], [v for v in rel[name] if v],
               width, bottom=0, color=COLORS.get(name, f"C{i}"), label=name)
        if name == "zarrsync":
            for x, v in zip(xs, rel[name]):
                if v:  # above the bar, or above the dashed line if just under it
                    y = 1.04 if 0.7 < v < 1 else v * 1.04
                    ax.text(x, y, f"{v:.2f}", ha="center", va="bottom", fontsize=7,
                            rotation=90)
    ax.axhline(1.0, color="k", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="y", which="major", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    others = ", ".join(n for n in names if n != "zarrsync")
    ax.set_ylabel(f"speed / fastest of {others}\n"
                  "(log scale; above the dashed line = faster than all of them)")
    ticks = ["\n".join(textwrap.wrap(pretty(row["label"]), 14)) for row in rows]
    ax.set_xticks(range(len(rows)), ticks, fontsize=7)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.legend(ncols=len(names), loc="upper left", fontsize=8)
    size = "quick sizes" if results.get("quick") else "full sizes"
    ax.set_title(f"zarrsync vs other Zarr v3 implementations, per workload "
                 f"(medians of {results['repeats']} rounds, {size}; numbers on the bars: "
                 f"zarrsync's ratio)", fontsize=10)
    fig.text(0.01, 0.005, machine_line(results["machine"]), fontsize=6, color="0.3",
             va="bottom")
    fig.get_layout_engine().set(h_pad=0.25)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ratios_across_runs(runs, paths):
    """Markdown: each workload's ratio in every run, and the median of them."""
    labels = [row["label"] for row in runs[0]["rows"]]
    by_run = [{row["label"]: row.get("ratio") for row in r["rows"]} for r in runs]
    head = ["workload"] + [f"run {k + 1}" for k in range(len(runs))] + ["median"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for label in labels:
        ratios = [r.get(label) for r in by_run]
        present = sorted(v for v in ratios if v is not None)
        median = statistics.median(present) if present else None
        cells = ["n/a" if v is None else f"{v:.2f}x" for v in ratios + [median]]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    def stolen(r):
        share = r["machine"].get("cpu_stolen")
        return "" if share is None else f", {100 * share:.0f}% of the CPU time stolen"
    when = "; ".join(f"run {k + 1}: {r.get('date', '')}, {os.path.basename(p)}{stolen(r)}"
                     for k, (r, p) in enumerate(zip(runs, paths)))
    return "\n".join(lines) + f"\n\n({when}; run 1 is the table and chart above.)"


def table_section(results, json_path, md_path, also=()):
    """The generated text between the markers."""
    rel = os.path.relpath(json_path, os.path.dirname(os.path.abspath(md_path)))
    json_in_repo = os.path.relpath(os.path.abspath(json_path), os.path.dirname(DOCS))
    size = "the quick (small) sizes" if results.get("quick") else "the full sizes"
    parts = [
        f"<!-- generated by benchmarks/plot_compare.py from {rel}; do not edit by hand -->",
        "",
        (f"Measured {results.get('date', '')} with {size}, medians of {results['repeats']} "
         "rounds (each runs every implementation once, in rotating order). MB/s are of the "
         "uncompressed array; ratio = zarrsync's speed / the fastest other implementation "
         "(> 1: zarrsync is faster)."),
        "",
        markdown_table(results),
        "",
    ]
    parts += [f"* {note}" for note in footnotes(results)]
    if results.get("limits"):
        parts += ["", ("Physical limits, measured in the same run (scaling = all threads / "
                       "one thread; CPU/wall and overlap: see above; page faults: minor "
                       "page faults of one run on one thread / on all threads):"),
                  "", limits_table(results)]
    if also:
        runs = [results] + [run for run, _ in also]
        commits = {r["machine"].get("zarrsync_commit") for r in runs}
        if len(commits) > 1:
            raise SystemExit(f"--also: the runs are of different commits {sorted(map(str, commits))}")
        parts += ["", f"Ratios of the same code in {len(runs)} runs, one after another:", "",
                  ratios_across_runs(runs, [json_path] + [p for _, p in also])]
    parts += [
        "",
        f"Machine: {machine_line(results['machine'])}.",
        "",
        "Commands:",
        "",
        "```",
        results["command"],
        *[run["command"] for run, _ in also],
        " ".join(["python benchmarks/plot_compare.py", json_in_repo]
                 + (["--also"] + [os.path.relpath(os.path.abspath(p), os.path.dirname(DOCS))
                                  for _, p in also] if also else [])),
        "```",
    ]
    return "\n".join(parts)


def update_markdown(md_path, section):
    with open(md_path) as f:
        text = f.read()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise SystemExit(f"{md_path}: no {START} ... {END} section to replace")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(md_path, "w") as f:
        f.write(f"{head}{START}\n{section}\n{END}{tail}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="the file written by compare.py --json")
    parser.add_argument("--png", default=os.path.join(DOCS, "performance.png"))
    parser.add_argument("--md", default=os.path.join(DOCS, "performance.md"))
    parser.add_argument("--no-md", action="store_true", help="only write the chart")
    parser.add_argument("--also", nargs="+", default=[], metavar="JSON",
                        help="further runs of the same code: their ratios join the table")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        results = json.load(f)
    also = []
    for path in args.also:
        with open(path) as f:
            also.append((json.load(f), path))
    plot(results, args.png)
    print(f"wrote {args.png}")
    if not args.no_md:
        update_markdown(args.md, table_section(results, args.json, args.md, also))
        print(f"updated {args.md}")


if __name__ == "__main__":
    main()
