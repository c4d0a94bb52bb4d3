"""``python -m sevref``: the command line."""

import sys

from sevref._cli import main

sys.exit(main())
