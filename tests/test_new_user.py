"""Issue #22's acceptance script: what a new user writes from the README and
``docs/`` alone, run as a script in a fresh process.

It creates a hierarchy with ``open_group``, appends 100 time steps, prints
``tree()`` and ``info``, copies the store to a zip with new codecs and new
chunks through ``zarrsync copy``, and runs ``zarrsync check`` on a store with
a corrupted chunk, which exits 1 and names it. The command line runs without
a terminal here, so it shows no progress bar.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np

import zarrsync as zs

SCRIPT = textwrap.dedent('''
    import json, subprocess, sys
    import numpy as np
    import zarrsync as zs

    def zarrsync_command(*args):
        # The installed "zarrsync" script; "python -m zarrsync" is the same program.
        return subprocess.run([sys.executable, "-P", "-m", "zarrsync", *args],
                              capture_output=True, text=True)

    # A simulation writes one time step at a time.
    root = zs.open_group("sim.zarr", mode="w", attributes={"model": "toy"})
    run = root.create_group("run1")
    temp = run.create_array("temperature", shape=(0, 32, 32), chunks=(10, 32, 32),
                            dtype="float32", fill_value=float("nan"),
                            dimension_names=["time", "y", "x"])
    y, x = np.mgrid[0:32, 0:32]
    for step in range(100):
        temp.append((np.sin(x / 5 + step / 10) * np.cos(y / 7)).astype("float32")[None])
    temp.attrs["units"] = "K"
    print(root.tree())
    print(temp.info)

    # Copy to a zip: zstd level 3 with a checksum, chunks of 25 time steps x 16 x 16.
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}},
              {"name": "zstd", "configuration": {"level": 3, "checksum": True}}]
    copied = zarrsync_command("copy", "sim.zarr", "sim.zip", "--codecs", json.dumps(codecs),
                              "--chunks", "25,16,16")
    print("copy exit", copied.returncode, copied.stdout.strip(), copied.stderr.strip())
    same = zs.open_array("sim.zip", path="/run1/temperature", mode="r")
    print("copy equal", bool(np.array_equal(same[...], temp[...])),
          same.chunks, [c["name"] for c in same.info.to_dict()["codecs"]])

    # Damage one chunk of the original (cut it short), then check both stores.
    key = "sim.zarr/run1/temperature/c/3/0/0"
    data = open(key, "rb").read()
    open(key, "wb").write(data[:len(data) // 2])
    broken = zarrsync_command("check", "sim.zarr")
    print("check broken exit", broken.returncode)
    print(broken.stdout)
    clean = zarrsync_command("check", "sim.zip")
    print("check clean exit", clean.returncode)
''')


def test_a_new_users_script(tmp_path):
    script = tmp_path / "first_steps.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-P", str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # The tree and the summary.
    assert "run1" in out and "temperature (100, 32, 32) float32" in out
    assert "Shape              : (100, 32, 32)" in out
    assert "Chunks stored      : 10 of 10" in out
    # The copy: exit 0, no progress bar off a terminal, the same values.
    assert "copy exit 0" in out
    assert "\r" not in out and "it/s" not in out
    assert "copy equal True (25, 16, 16) ['bytes', 'zstd']" in out
    # check names the damaged chunk and exits 1; the copy is clean.
    assert "check broken exit 1" in out
    assert "run1/temperature/c/3/0/0" in out
    assert "check clean exit 0" in out
    # What the script wrote is what it meant to write.
    arr = zs.open_array(tmp_path / "sim.zip", path="/run1/temperature", mode="r")
    y, x = np.mgrid[0:32, 0:32]
    expected = np.stack([(np.sin(x / 5 + s / 10) * np.cos(y / 7)).astype("float32")
                         for s in range(100)])
    np.testing.assert_array_equal(arr[...], expected)
    assert arr.attrs["units"] == "K"
    meta = json.loads(arr.store.get("run1/temperature/zarr.json"))
    assert meta["codecs"][1]["configuration"] == {"level": 3, "checksum": True}
