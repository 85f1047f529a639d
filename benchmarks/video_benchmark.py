"""``python benchmarks/video_benchmark.py`` from a checkout, as before: the command
``anytime bench video``, whose code is ``pipeline.benchmarks.video_benchmark``."""

import sys

from pipeline.benchmarks.video_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
