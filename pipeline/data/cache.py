"""Where downloads and decoded images are kept."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$ANYTIME_CACHE`` or ``~/.cache/anytime-pipeline``."""
    return Path(os.environ.get("ANYTIME_CACHE") or Path.home() / ".cache" / "anytime-pipeline")
