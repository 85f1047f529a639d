"""The demo clip: frame count, labels, pixels survive the enlarge + INTER_AREA round trip."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.video.clip import write_clip
from pipeline.video.frames import to_model_input


def test_clip_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    flat = np.repeat(np.repeat(rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8), 8, axis=1), 8, axis=2)
    clip = write_clip(flat, ["a", "b", "a", "b", "a"], tmp_path, scale=4)
    assert json.loads((tmp_path / "labels.json").read_text()) == ["a", "b", "a", "b", "a"]
    cap = cv2.VideoCapture(str(clip))
    frames = []
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    cap.release()
    assert len(frames) == 5 and frames[0].shape == (128, 128, 3)
    back = to_model_input(frames[0], (32, 32), "BGR")
    assert np.abs(back.astype(int) - flat[0].astype(int)).mean() < 6  # MJPG is lossy, blocks are flat


def test_empty_clip_is_refused(tmp_path):
    with pytest.raises(PipelineError, match="no images"):
        write_clip(np.zeros((0, 4, 4, 3), np.uint8), [], tmp_path)
