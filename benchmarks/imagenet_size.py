"""``python benchmarks/imagenet_size.py`` from a checkout, as before: the command
``anytime bench imagenet-size``, whose code is ``pipeline.benchmarks.imagenet_size``."""

import sys

from pipeline.benchmarks.imagenet_size import main

if __name__ == "__main__":
    sys.exit(main())
