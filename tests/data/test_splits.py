"""The splits: validation_split (deterministic, stratified, exact size, disjoint and covering), and the evaluation
splits of a built model's data, with the errors for every way they can be wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.data.splits import split_images, validation_split
from pipeline.errors import PipelineError
from tests.helpers import tiny_build


def _labels() -> np.ndarray:
    return np.repeat(np.arange(3), [50, 30, 20])[np.random.default_rng(0).permutation(100)]  # (100,)


def test_disjoint_covering_sorted():
    train, val = validation_split(_labels(), size=17, seed=3)
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert len(val) == 17 and len(train) == 83
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(100))


def test_stratified_counts():
    labels = _labels()
    _, val = validation_split(labels, size=10)
    assert np.bincount(labels[val]).tolist() == [5, 3, 2]
    _, val = validation_split(labels, size=17)  # 8.5, 5.1, 3.4 -> largest remainders get the spare
    assert np.bincount(labels[val]).tolist() == [9, 5, 3]


def test_seeded_and_stable():
    labels = _labels()
    a = validation_split(labels, size=10, seed=0)
    b = validation_split(labels, size=10, seed=0)
    c = validation_split(labels, size=10, seed=1)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_golden_indices():
    # Pinned so a numpy upgrade or a refactor cannot silently change which images are held out.
    _, val = validation_split(np.arange(20) % 2, size=4, seed=0)
    assert val.tolist() == [2, 3, 11, 18]


@pytest.mark.parametrize("size", [0, -1, 100, 101])
def test_bad_size(size):
    with pytest.raises(PipelineError, match="validation size must be"):
        validation_split(_labels(), size=size)



def test_labels_fingerprint_names_the_labels_in_order():
    from pipeline.data.splits import labels_fingerprint

    labels = np.array([0, 1, 1, 2, 0])
    assert labels_fingerprint(labels) == labels_fingerprint(labels.astype(np.int32).tolist())
    assert labels_fingerprint(labels) != labels_fingerprint(labels[::-1])
    assert len(labels_fingerprint(labels)) == 16


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_build(tmp_path_factory)


def test_split_images_of_the_built_model(built):
    from pipeline.manifest import load_manifest

    manifest = load_manifest(built.folder)
    images, labels = split_images(manifest, str(built.data), "validation", built.cache)
    assert images.shape == (20, 32, 32, 3) and images.dtype == "uint8" and labels.dtype == "int64"
    assert len(split_images(manifest, str(built.data), "test", built.cache, limit=7)[0]) == 7


def test_split_images_errors(built, tmp_path):
    from pipeline.manifest import load_manifest

    manifest = load_manifest(built.folder)
    with pytest.raises(PipelineError, match="split must be one of validation, test"):
        split_images(manifest, str(built.data), "train", built.cache)
    manifest.model.pop("split", None)
    with pytest.raises(PipelineError, match="how the validation split was drawn"):
        split_images(manifest, str(built.data), "validation", built.cache)
    manifest.classes = ["x"] * 10
    with pytest.raises(PipelineError, match="differ from the model's"):
        split_images(manifest, str(built.data), "test", built.cache)
    assert json.loads((built.folder / "manifest.json").read_text())["model"]["split"]["size"] == 20  # untouched


def test_data_with_other_training_labels_is_refused_for_the_validation_split():
    from pipeline.data.imageset import ImageSet
    from pipeline.data.splits import labels_fingerprint
    from pipeline.data.splits import redraw_validation

    labels = np.array([0, 1] * 10, dtype=np.int64)
    images = np.zeros((20, 4, 4, 3), np.uint8)
    train = ImageSet(images, labels, ("a", "b"))
    drawn = {"seed": 0, "size": 4, "labels_sha256": labels_fingerprint(labels)}
    assert len(redraw_validation(train, drawn)[1]) == 4
    with pytest.raises(PipelineError, match="training labels are not those the model's validation split"):
        redraw_validation(ImageSet(images, labels[::-1].copy(), ("a", "b")), drawn)
    del drawn["labels_sha256"]  # a model saved before fingerprints: size and seed alone
    assert len(redraw_validation(ImageSet(images, labels[::-1].copy(), ("a", "b")), drawn)[1]) == 4
