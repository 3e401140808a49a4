"""``python -m commerce.entrypoints.cli``: the ``commerce`` command, without the console script."""

import sys

from commerce.entrypoints.cli import main

sys.exit(main())
