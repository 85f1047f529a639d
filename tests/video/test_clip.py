"""The clip generator: deterministic for a seed, labels that match its scenes, camera behaviour, files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.temporal.change import ChangeMeter
from pipeline.video.clip import write_clip
from pipeline.video.frames import to_model_input
from pipeline.video.scenes import ClipSpec, plan_clip, render_frames

SMALL = dict(scenes=4, min_frames=10, max_frames=16, size=(60, 80))


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return np.stack([cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (32, 32),
                                interpolation=cv2.INTER_CUBIC) for _ in range(6)])  # (6, 32, 32, 3)


LABELS = np.array([0, 1, 2, 0, 1, 2])


def test_same_seed_same_frames_other_seed_other_frames(images):
    spec = ClipSpec(**SMALL)
    one = np.stack(list(render_frames(plan_clip(LABELS, spec, seed=3), images)))
    two = np.stack(list(render_frames(plan_clip(LABELS, spec, seed=3), images)))
    other = np.stack(list(render_frames(plan_clip(LABELS, spec, seed=4), images)))
    assert one.shape[1:] == (60, 80, 3) and one.dtype == np.uint8
    assert np.array_equal(one, two)
    assert one.shape != other.shape or not np.array_equal(one, other)


def test_labels_match_scenes_and_cuts(images):
    plan = plan_clip(LABELS, ClipSpec(**SMALL), seed=1)
    labels, scenes = plan.frame_labels(), plan.frame_scenes()
    assert len(labels) == plan.num_frames == sum(s.frames for s in plan.scenes)
    for s in plan.scenes:
        assert 10 <= s.frames <= 16 and len(s.segments) == s.frames
        assert (labels[s.start:s.start + s.frames] == LABELS[s.image]).all() and (scenes[s.start:s.start + s.frames] ==
                                                                                  s.index).all()
    assert plan.cuts() == [s.start for s in plan.scenes[1:]]
    assert len({s.image for s in plan.scenes}) == len(plan.scenes)  # no image twice while there are enough


def test_the_model_sees_the_scene_image_and_cuts_stand_out(images):
    plan = plan_clip(LABELS, ClipSpec(**SMALL), seed=2)
    frames = [to_model_input(f, (32, 32), "BGR", crop=True) for f in render_frames(plan, images)]
    meter = ChangeMeter()
    thumbs = [meter.thumb(f) for f in frames]
    own = [meter.distance(thumbs[s.start + 1], meter.thumb(images[s.image])) for s in plan.scenes]
    others = [meter.distance(thumbs[s.start + 1], meter.thumb(images[(s.image + 1) % 6])) for s in plan.scenes]
    assert np.mean(own) < 0.5 * np.mean(others)  # each scene shows its own image
    steps = [meter.distance(thumbs[i], thumbs[i - 1]) for i in range(1, len(frames))]
    cut_steps = [steps[c - 1] for c in plan.cuts()]
    within = [d for i, d in enumerate(steps, start=1) if i not in plan.cuts()]
    assert min(cut_steps) > np.median(within) * 3


def test_continuous_motion_never_stands_still():
    plan = plan_clip(np.arange(10), ClipSpec(scenes=10, motion="continuous"), seed=0)
    assert all("static" not in s.segments for s in plan.scenes)
    mixed = plan_clip(np.arange(10), ClipSpec(scenes=10), seed=0)
    assert any("static" in s.segments for s in mixed.scenes) and any("fast" in s.segments for s in mixed.scenes)


def test_files_beside_the_clip(images, tmp_path):
    plan = plan_clip(LABELS, ClipSpec(**SMALL), seed=0)
    clip = write_clip(plan, images, ["a", "b", "c"], tmp_path, fps=10.0)
    names = json.loads((tmp_path / "labels.json").read_text())
    scenes = json.loads((tmp_path / "scenes.json").read_text())
    assert names == [["a", "b", "c"][int(x)] for x in plan.frame_labels()]
    assert [s["start"] for s in scenes] == [s.start for s in plan.scenes] and scenes[0]["class"] == names[0]
    cap = cv2.VideoCapture(str(clip))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == plan.num_frames and not list(tmp_path.glob("*.tmp.*"))


def test_bad_specs_are_refused():
    for kw, match in ((dict(scenes=0), "at least one scene"), (dict(min_frames=5, max_frames=4), "max_frames"),
                      (dict(motion="drone"), "unknown camera motion"), (dict(size=(4, 4)), "at least 8")):
        with pytest.raises(PipelineError, match=match):
            ClipSpec(**kw)
    with pytest.raises(PipelineError, match="at least one image"):
        plan_clip(np.array([]), ClipSpec())
