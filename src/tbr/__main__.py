"""`python -m tbr ...`: the same as the `tbr` command."""
import os
import sys

from tbr.cli import main

if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
