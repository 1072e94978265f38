"""Shared by the asv suites, compare.py and plot_compare.py: data that compresses
like real data, and the text of compare.py's result tables (from its JSON)."""

import numpy as np


def smooth_field(shape, dtype="float32", seed=0, noise=1e-3):
    """A smooth field plus small noise (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(0, 4, n, dtype=np.float64) for n in shape]
    field = np.zeros(shape, dtype=np.float64)
    for i, ax in enumerate(axes):
        view = [1] * len(shape)
        view[i] = len(ax)
        field = field + np.sin(ax * (i + 1)).reshape(view)
    field += rng.normal(0, noise, shape)
    return field.astype(dtype)


def short_strings(n, mean_len=12, seed=0):
    """``n`` strings of 1..2*mean_len-1 characters (mean ``mean_len``), mostly
    ASCII with some accented and CJK letters, as a NumPy ``StringDType`` array."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 2 * mean_len, n)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789 _-ABCDEFGHIJéüø中"))
    weights = np.ones(len(alphabet))
    weights[-4:] = 0.05  # non-ASCII letters are rare
    chars = rng.choice(alphabet, size=int(lengths.sum()), p=weights / weights.sum())
    text = "".join(chars.tolist())
    ends = np.cumsum(lengths).tolist()
    starts = [0] + ends[:-1]
    return np.array([text[a:b] for a, b in zip(starts, ends)], dtype=np.dtypes.StringDType())


# -- result tables (compare.py prints them; plot_compare.py puts them in the docs) --

def machine_line(machine):
    v = ", ".join(f"{k} {val}" for k, val in machine["versions"].items() if val)
    commit = f" (commit {machine['zarrsync_commit']})" if machine.get("zarrsync_commit") else ""
    stolen = machine.get("cpu_stolen")
    steal = ("" if stolen is None else
             f"; CPU time stolen by the hypervisor during the run: {100 * stolen:.0f}%")
    return (f"{machine['cpu_count']} CPUs, {machine['platform']}, Python {machine['python']}; "
            f"{v}{commit}{steal}")


def format_speed(v, unit):
    if v is None:
        return "n/a"
    return f"{v:.1f} {unit}" if v < 1000 else f"{v:.0f} {unit}"


def markdown_table(results):
    """The comparison table (one string) from the results dictionary."""
    names = results["implementations"]
    lines = ["| workload | " + " | ".join(names) + " | ratio |",
             "|---|" + "---:|" * len(names) + "---:|"]
    for row in results["rows"]:
        cells = []
        for name in names:
            v = row["speeds"].get(name)
            cells.append("error" if name in row.get("errors", {}) else
                         format_speed(v, row["unit"]))
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def percent(x):
    return "n/a" if x is None else f"{100 * x:.0f}%"


def page_faults(lim):
    counts = [lim.get(k) for k in ("page_faults_one_thread", "page_faults_all_threads")]
    return "n/a" if None in counts else " / ".join(f"{c:,}" for c in counts)


def limits_table(results):
    limits = results["limits"]
    if not limits:
        return ""
    threads = limits[0]["threads"]
    nan = float("nan")
    header = (f"| limit (MB/s of uncompressed bytes) | 1 thread | {threads} threads "
              f"| scaling | CPU/wall | overlap | page faults/run, 1 / {threads} threads |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for lim in limits:
        label = lim["label"]
        if "compression_ratio" in lim:
            label += f"; compression ratio {lim['compression_ratio']:.2f}"
        lines.append(f"| {label} | {lim['one_thread']:.0f} MB/s | {lim['all_threads']:.0f} MB/s "
                     f"| {lim['scaling']:.2f}x | {lim.get('cpu_per_wall', nan):.2f} "
                     f"| {percent(lim.get('gil_overlap'))} | {page_faults(lim)} |")
    return "\n".join(lines)


def footnotes(results):
    notes = []
    zarrs_root = results.get("zarrs_store_dir")
    ran = [n for n in results["implementations"] if n not in results.get("skipped", {})]
    if results.get("fresh_writes"):
        notes.append(
            "Every write row writes into a freshly created array in each timed repeat: the "
            "array is created (and the implementation's previous one freed) before the timed "
            "call, and only the write is timed. The W1 raw rewrite row instead overwrites one "
            "existing array every repeat.")
    if "zarr-python fused" in ran:
        notes.append(
            "zarr-python fused = zarr-python with codec_pipeline.path = "
            "zarr.core.codec_pipeline.FusedCodecPipeline (each array is checked to use it), "
            "on a MemoryStore; zarr-python alone uses its default BatchedCodecPipeline.")
    if "zarrs" in ran:
        where = (f"a fresh temporary directory under {zarrs_root}" if zarrs_root
                 else "a fresh temporary directory")
        notes.append(
            "zarrs = zarr-python with the zarrs codec pipeline (codec_pipeline.path = "
            "zarrs.ZarrsCodecPipeline, strict mode; each array is checked to use it). It "
            f"cannot use zarr-python's MemoryStore, so it runs on a zarr.storage.LocalStore in "
            f"{where}, removed afterwards; the other columns are in memory.")
    for name, why in results.get("skipped", {}).items():
        notes.append(f"{name}: {why}: not run")
    reasons = {}
    for row in results["rows"]:
        for name, why in row.get("notes", {}).items():
            reasons.setdefault((name, why), []).append(row["label"].split()[0])
    for (name, why), ids in reasons.items():
        notes.append(f"n/a for {name} ({', '.join(dict.fromkeys(ids))}): {why}")
    for row in results["rows"]:
        for name, err in row.get("errors", {}).items():
            notes.append(f"error for {name} in {row['label']}: {err}")
    return notes
