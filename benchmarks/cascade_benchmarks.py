"""``python benchmarks/cascade_benchmarks.py`` from a checkout, as before: the command
``anytime bench cascade``, whose code is ``pipeline.benchmarks.cascade_benchmarks``."""

import sys

from pipeline.benchmarks.cascade_benchmarks import main

if __name__ == "__main__":
    sys.exit(main())
