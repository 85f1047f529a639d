"""Calibration inputs: drawn from train minus validation, per-stage features, cached and reused."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from pipeline import names  # noqa: E402
from pipeline.data import validation_split  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.export.calibration import (CalibrationReader, calibration_indices, calibration_inputs,  # noqa: E402
                                         calibration_key)
from tests.export.conftest import image_like  # noqa: E402

SPLIT = {"seed": 0, "size": 6, "source": "generated"}


def test_indices_avoid_the_validation_split_and_are_seeded():
    labels = np.arange(30) % 3
    _, val = validation_split(labels, size=6, seed=0)
    idx = calibration_indices(labels, SPLIT, 10, seed=0)
    assert len(idx) == 10 and len(set(idx)) == 10 and np.all(np.diff(idx) > 0)
    assert not set(idx) & set(val)
    assert np.array_equal(idx, calibration_indices(labels, SPLIT, 10, seed=0))
    assert not np.array_equal(idx, calibration_indices(labels, SPLIT, 10, seed=1))


@pytest.mark.parametrize("n,match", [(25, "only 24"), (0, "at least 1")])
def test_too_many_or_no_images_is_an_error(n, match):
    with pytest.raises(PipelineError, match=match):
        calibration_indices(np.arange(30) % 3, SPLIT, n)


def test_key_depends_on_weights_images_and_seed():
    frames = image_like(4)
    key = calibration_key("a" * 64, frames, 0)
    assert key == calibration_key("a" * 64, frames.copy(), 0)
    assert len({key, calibration_key("b" * 64, frames, 0), calibration_key("a" * 64, frames, 1),
                calibration_key("a" * 64, frames[:3], 0), calibration_key("a" * 64, 255 - frames, 0)}) == 5


def test_stage_k_is_fed_the_maps_of_stages_before_it_and_the_cache_is_reused(exported, tmp_path):
    import onnxruntime as ort

    frames = image_like(6, seed=3)
    key = calibration_key("c" * 64, frames, 0)
    feeds, cache, reused = calibration_inputs(exported.paths, frames, tmp_path, key, batch=4)
    assert not reused and cache.is_file() and cache.parent == tmp_path
    assert list(feeds[0]) == [names.FRAME] and np.array_equal(feeds[0][names.FRAME], frames)
    sess = ort.InferenceSession(str(exported.paths[0]), providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {names.FRAME: frames})))
    assert set(feeds[1]) == {i.name for i in ort.InferenceSession(
        str(exported.paths[1]), providers=["CPUExecutionProvider"]).get_inputs()}
    for name, arr in feeds[1].items():
        np.testing.assert_allclose(arr, outs[name], atol=1e-5)
    again, cache2, reused2 = calibration_inputs(exported.paths, frames, tmp_path, key)
    assert reused2 and cache2 == cache
    for a, b in zip(feeds, again):
        assert all(np.array_equal(a[n], b[n]) for n in a)


def test_a_damaged_cache_is_recomputed(exported, tmp_path):
    frames = image_like(3, seed=4)
    key = calibration_key("d" * 64, frames, 0)
    _, cache, _ = calibration_inputs(exported.paths, frames, tmp_path, key)
    cache.write_bytes(b"garbage")
    feeds, _, reused = calibration_inputs(exported.paths, frames, tmp_path, key)
    assert not reused and len(feeds) == 3


def test_reader_follows_the_get_next_protocol():
    feeds = {"x": np.arange(10, dtype=np.float32).reshape(10, 1)}
    reader = CalibrationReader(feeds, batch=4)
    assert len(reader) == 3
    sizes = []
    while (batch := reader.get_next()) is not None:
        sizes.append(len(batch["x"]))
    assert sizes == [4, 4, 2]
    reader.set_range(1, 2)
    assert reader.get_next()["x"][0, 0] == 4 and reader.get_next() is None
    reader.rewind()
    assert reader.get_next()["x"][0, 0] == 4


def test_only_the_newest_sets_are_kept(tmp_path):
    import os

    from pipeline.export.calibration import prune_cache

    for i in range(5):
        (tmp_path / f"calib-{i}.npz").write_bytes(b"x")
        (tmp_path / f"calib-{i}.stage1.entropy.abc.json").write_text("{}")
        os.utime(tmp_path / f"calib-{i}.npz", (1000 + i, 1000 + i))
    prune_cache(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "calib-3.npz", "calib-3.stage1.entropy.abc.json", "calib-4.npz", "calib-4.stage1.entropy.abc.json"]
