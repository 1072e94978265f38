"""What erasing a node costs on a FilesystemStore, next to the file-system calls it makes.

``python -P benchmarks/erase_node.py [--dir FOLDER]`` creates arrays of 1 and
256 chunks (int32, written) and times ``erase_array_node`` on each, then times
the folder calls an erase is made of, on the same disk: a folder ``rename``
and a ``mkdir`` + ``rmdir`` pair (the erase moves the node's folder into a
new hidden folder, then deletes both). It prints the median microseconds of
``--rounds`` erases. Measurements go to docs/performance.md.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import zarrsync as zs
from zarrsync import ArrayNode, GroupNode


def median_us(times):
    return statistics.median(times) * 1e6


def erase_times(folder, n_chunks, rounds):
    store = zs.FilesystemStore(folder, mode="w")
    store.create_group(GroupNode.root())
    times = []
    for r in range(rounds):
        node = ArrayNode.of_path(f"/a{r}")
        store.create_array(node, shape=(n_chunks * 16,), chunks=(16,), dtype="int32")
        store.write_array(node, ..., np.arange(n_chunks * 16, dtype="int32"))
        start = time.perf_counter()
        store.erase_array_node(node)
        times.append(time.perf_counter() - start)
    return times


def folder_call_times(folder, rounds):
    renames, pairs = [], []
    for r in range(rounds):
        a, b, c = (os.path.join(folder, f"{name}{r}") for name in "abc")
        os.mkdir(a)
        start = time.perf_counter()
        os.rename(a, b)
        renames.append(time.perf_counter() - start)
        os.rmdir(b)
        start = time.perf_counter()
        os.mkdir(c)
        os.rmdir(c)
        pairs.append(time.perf_counter() - start)
    return renames, pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where the stores go (default: the temp dir)")
    parser.add_argument("--rounds", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        rows = [(f"erase_array_node, {n} chunk{'s' * (n > 1)}",
                 erase_times(os.path.join(folder, f"s{n}"), n, args.rounds)) for n in (1, 256)]
        renames, pairs = folder_call_times(folder, args.rounds)
    rows += [("os.rename of a folder", renames), ("os.mkdir + os.rmdir", pairs)]
    width = max(len(name) for name, _ in rows)
    print(f"{'median of ' + str(args.rounds):<{width}}  microseconds")
    for name, times in rows:
        print(f"{name:<{width}}  {median_us(times):10.0f}")


if __name__ == "__main__":
    main()
