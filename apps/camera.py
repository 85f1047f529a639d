"""``python apps/camera.py`` from a checkout, as before: the command
``anytime camera``, whose code is ``pipeline.apps.camera``."""

import sys

from pipeline.apps.camera import main

if __name__ == "__main__":
    sys.exit(main())
