"""Loading at a model's crop rule: ``resize_shorter`` crops as the camera app does, 0 squashes as before."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.data import load_dataset, load_imagefolder
from pipeline.data.cache import cache_key as _cache_key
from pipeline.errors import PipelineError
from pipeline.data.geometry import resize_and_crop


def test_resize_shorter_crops_as_the_camera_app(make_tree):
    root, made = make_tree(prefix="train", shape=(60, 90))  # landscape, 2:3
    _, tall = make_tree(prefix="train", shape=(70, 40), seed=3, classes=("cat",), base=root)  # portrait
    data = load_dataset(root, "train", cache_dir=None, size=(24, 24), resize_shorter=28)
    made["cat"] = tall["cat"]
    expected = np.stack([resize_and_crop(img, (24, 24), 28) for cls in sorted(made) for img in made[cls]])
    assert data.images.shape == (6, 24, 24, 3)
    np.testing.assert_array_equal(data.images, expected)
    squashed = load_dataset(root, "train", cache_dir=None, size=(24, 24))
    assert not np.array_equal(squashed.images, expected)  # the crop is not the squash


def test_resize_shorter_zero_is_the_squash_as_before(make_tree):
    root, made = make_tree(shape=(60, 90))
    data = load_imagefolder(root, size=(24, 24), resize_shorter=0)
    expected = np.stack([cv2.resize(img, (24, 24), interpolation=cv2.INTER_AREA)
                         for cls in sorted(made) for img in made[cls]])
    np.testing.assert_array_equal(data.images, expected)
    np.testing.assert_array_equal(load_imagefolder(root, size=(24, 24)).images, expected)


def test_an_image_already_at_size_is_kept_with_either_rule(make_tree):
    root, made = make_tree(shape=(24, 24))
    kept = np.stack([img for cls in sorted(made) for img in made[cls]])
    np.testing.assert_array_equal(load_imagefolder(root, size=(24, 24), resize_shorter=28).images, kept)


def test_cifar_archive_is_cropped_by_the_same_rule(make_cifar, tmp_path):
    archive = make_cifar()
    plain = load_dataset(archive, "train", cache_dir=tmp_path)
    cropped = load_dataset(archive, "train", cache_dir=tmp_path, size=(16, 24), resize_shorter=24)
    expected = np.stack([resize_and_crop(img, (16, 24), 24) for img in plain.images])
    np.testing.assert_array_equal(cropped.images, expected)


def test_the_cache_key_tells_the_crop_from_the_squash(make_tree, tmp_path, monkeypatch):
    root, made = make_tree(shape=(60, 90))
    squash = _cache_key(root, None, ((24, 24), 0), "listing")
    assert squash != _cache_key(root, None, ((24, 24), 28), "listing") != _cache_key(root, None, ((24, 24), 32),
                                                                                         "listing")
    cache = tmp_path / "cache"
    squashed = load_imagefolder(root, size=(24, 24), cache_dir=cache)
    cropped = load_imagefolder(root, size=(24, 24), cache_dir=cache, resize_shorter=28)
    assert len(list(cache.glob("imagefolder-*.json"))) == 2  # two entries: the squash is not reused for the crop
    assert not np.array_equal(squashed.images, cropped.images)

    def boom(*args, **kwargs):
        raise AssertionError("decoded despite a cache hit")

    monkeypatch.setattr(cv2, "imdecode", boom)
    np.testing.assert_array_equal(load_imagefolder(root, size=(24, 24), cache_dir=cache, resize_shorter=28).images,
                                  cropped.images)
    np.testing.assert_array_equal(load_imagefolder(root, size=(24, 24), cache_dir=cache).images, squashed.images)


def test_a_crop_rule_without_a_size_is_refused(make_tree):
    root, _ = make_tree()
    with pytest.raises(PipelineError, match="resize_shorter"):
        load_imagefolder(root, resize_shorter=28)
    with pytest.raises(PipelineError, match="resize_shorter"):
        load_imagefolder(root, size=(8, 8), resize_shorter=-1)
