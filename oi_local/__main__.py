"""`python -m oi_local` is `oi-local`."""

import sys

from oi_local.face.cli import console_main

sys.argv[0] = "oi-local"
console_main()
