"""Import time of the compiled package."""

import subprocess
import sys


class Import:
    def timeraw_import(self):
        return "import zarrsync"

    def track_import_seconds(self):
        out = subprocess.run(
            [sys.executable, "-P", "-X", "importtime", "-c", "import zarrsync"],
            capture_output=True, text=True, check=True)
        last = [line for line in out.stderr.splitlines() if line.rstrip().endswith("zarrsync")]
        return int(last[-1].split("|")[1]) / 1e6 if last else float("nan")

    track_import_seconds.unit = "seconds"
