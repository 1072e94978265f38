"""Coverage-guided fuzzing of zarrsync with atheris (libFuzzer), beside the
Hypothesis targets of ``test_fuzz.py``, whose seeds and calls it reuses.

Not collected by pytest. Run one target, for as long as you like::

    pip install atheris
    python tests/fuzz_atheris.py metadata -atheris_runs=100000
    python tests/fuzz_atheris.py chunks -max_len=4096

The input's first byte picks the seed key (a ``zarr.json`` for ``metadata``,
a chunk or shard for ``chunks``); the rest replaces that key's value.
Without a corpus folder, the run starts from the seeds' own values. Only
``zarrsync`` errors may come out: anything else is a crash libFuzzer reports,
with the input saved as ``crash-*``. ``-rss_limit_mb`` bounds the memory.
"""

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import zarrsync as zs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_fuzz import (CHUNK_KEYS, DOCUMENT_KEYS, MAX_CHUNK_BYTES, SEED, exercise,  # noqa: E402
                       seed_with)

TARGETS = {"metadata": DOCUMENT_KEYS, "chunks": CHUNK_KEYS}


def make_target(keys):
    def one_input(data):
        if not data:
            return
        exercise(seed_with((keys[data[0] % len(keys)], data[1:])))
    return one_input


def seed_corpus(keys):
    """A folder holding one input per seed key: the valid stores to start from."""
    folder = tempfile.mkdtemp(prefix="zarrsync-fuzz-")
    for i, key in enumerate(keys):
        with open(os.path.join(folder, f"seed-{i}"), "wb") as f:
            f.write(bytes([i]) + SEED[key])
    return folder


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options] [corpus]")
    keys = TARGETS[sys.argv.pop(1)]
    zs.config.set(max_chunk_bytes=MAX_CHUNK_BYTES)
    args = sys.argv + ["-rss_limit_mb=4096"]
    if not any(not a.startswith("-") for a in sys.argv[1:]):
        args.append(seed_corpus(keys))  # no corpus given: start from the seeds
    atheris.Setup(args, make_target(keys))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
