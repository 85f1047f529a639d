"""``python benchmarks/train_throughput.py`` from a checkout, as before: the command
``anytime bench train-throughput``, whose code is ``pipeline.benchmarks.train_throughput``."""

import sys

from pipeline.benchmarks.train_throughput import main

if __name__ == "__main__":
    sys.exit(main())
