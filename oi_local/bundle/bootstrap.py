"""The bundle's installer entry point (installer/install.py in a bundle), run by install.sh as `python3 -I -S -B`.

Written for any Python 3, so that a python3 too old for the bundle still gets a clear answer.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLE = os.path.dirname(HERE)

if sys.version_info < (3, 10):  # noqa: UP036 - this file runs on whatever python3 the target has
    try:
        with open(os.path.join(BUNDLE, "manifest.json")) as handle:
            target = json.load(handle)["target"]
        wanted = str(target["implementation"]) + " " + str(target["python"])
    except Exception:  # noqa: BLE001 - any problem: say what is known
        wanted = "Python 3.10 or newer"
    found = sys.implementation.name + " " + ".".join(str(n) for n in sys.version_info[:2])
    # no f-strings here: an old Python must be able to parse this file to say so
    sys.stderr.write(
        "Error: This bundle was made for " + wanted + "; this machine's python3 is " + found + ". Nothing was "
        "installed. Run the installer with a Python that matches (PYTHON=/path/to/python3.x " + BUNDLE
        + "/install.sh), or make a bundle for this Python on a connected machine (oi-local bundle create "
        "--python-version ...).\n"
    )
    sys.exit(2)

sys.path.insert(0, HERE)

from oi_local.bundle.installer import main  # noqa: E402 - after the path is set

sys.exit(main(sys.argv[1:], bundle=BUNDLE))
