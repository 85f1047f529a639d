"""The evaluation splits of a built model's data, with the errors for every way they can be wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.data.splits import split_images
from pipeline.errors import PipelineError
from tests.helpers import tiny_build


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
    from pipeline.data.split import labels_fingerprint
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
