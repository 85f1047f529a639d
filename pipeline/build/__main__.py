"""``python -m pipeline.build``: see ``pipeline.build.cli``."""

import sys

from pipeline.build.cli import main

sys.exit(main())
