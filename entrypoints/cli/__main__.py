"""``python -m entrypoints.cli``: the ``commerce`` command, without the console script."""

import sys

from entrypoints.cli import main

sys.exit(main())
