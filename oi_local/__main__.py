"""`python -m oi_local` is `oi-local`."""

import sys

from oi_local.face.cli import main

sys.exit(main(prog="oi-local"))
