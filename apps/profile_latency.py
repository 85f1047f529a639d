"""``python apps/profile_latency.py`` from a checkout, as before: the command
``anytime profile``, whose code is ``pipeline.apps.profile_latency``."""

import sys

from pipeline.apps.profile_latency import main

if __name__ == "__main__":
    sys.exit(main())
