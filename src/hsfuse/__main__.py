"""``python -m hsfuse ...``: the same command line as the ``hsfuse`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
