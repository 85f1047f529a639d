"""The data options every command takes: ``--data`` and ``--cache-dir``, and their frozen form."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.cache import default_cache_dir


@dataclass(frozen=True)
class DataOptions:
    """Where images come from: ``source`` "" downloads the official CIFAR-10 archive into ``cache_dir``."""

    source: str = ""  # an ImageFolder folder or archive, or a CIFAR-10 archive
    cache_dir: Path = Path()  # downloads and decoded images

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DataOptions":
        return cls(args.data or "", args.cache_dir or default_cache_dir())


def add_data_options(ap: argparse.ArgumentParser, help: str = "the data the model was trained on") -> None:
    """``--data`` (default ``$ANYTIME_DATA``) and ``--cache-dir`` (default ``default_cache_dir()``)."""
    ap.add_argument("--data", default=os.environ.get("ANYTIME_DATA", ""),
                    help=f"{help}: an ImageFolder folder or archive, or a CIFAR-10 archive; empty: download CIFAR-10")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="downloads and decoded images (default $ANYTIME_CACHE or ~/.cache/anytime-pipeline)")
