"""``python benchmarks/training_ablations.py`` from a checkout, as before: the command
``anytime bench ablations``, whose code is ``pipeline.benchmarks.training_ablations``."""

import sys

from pipeline.benchmarks.training_ablations import main

if __name__ == "__main__":
    sys.exit(main())
