"""Fixtures for the camera app's tests: a fake built model folder and a clip of known labels.

Imported by the modules that use them (``from tests.video.camera_fixtures import clip, engines``),
so that the app's own tests and its fault cases run on the same inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.video.fakes import CLASSES, PLAN, write_clip


@pytest.fixture
def engines(tmp_path: Path) -> Path:
    """A model folder with an empty manifest, for runs whose cascade is a fake."""
    folder = tmp_path / "engines" / "fake_model"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")  # read only by the real cascade, which is not used here
    return folder


@pytest.fixture
def clip(tmp_path: Path) -> tuple[Path, Path]:
    """(clip.avi, labels.json): the frames of ``PLAN``, with their labels."""
    path = write_clip(tmp_path / "clip.avi", PLAN)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([CLASSES[label] for label, _ in PLAN]))
    return path, labels
