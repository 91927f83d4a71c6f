"""``python -m bench COMMAND``: the command line (bench/commands/, one module per command)."""

import sys

from bench.commands import main

if __name__ == "__main__":
    sys.exit(main())
