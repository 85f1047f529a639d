"""Finding the class folders in a listing of image paths, and the names a listing skips."""

from __future__ import annotations

import pytest

from pipeline.data.folder_layout import class_layout, normalise_name, top_names
from pipeline.errors import PipelineError


def test_a_single_wrapper_folder_is_looked_through_and_labels_follow_sorted_classes():
    paths = ["cifar/dog/2.jpg", "cifar/cat/1.jpg", "cifar/dog/1.jpg"]
    classes, files, labels = class_layout(paths, None, "data.tar", top_names(paths))
    assert classes == ("cat", "dog")
    assert files == ["cifar/cat/1.jpg", "cifar/dog/1.jpg", "cifar/dog/2.jpg"] and labels.tolist() == [0, 1, 1]


def test_a_named_split_is_found_and_split_folders_are_not_taken_for_classes():
    paths = ["d/train/cat/1.jpg", "d/test/cat/2.jpg", "d/test/dog/3.jpg"]
    classes, files, _ = class_layout(paths, "test", "d", top_names(paths))
    assert classes == ("cat", "dog") and files[0] == "d/test/cat/2.jpg"
    with pytest.raises(PipelineError, match="look like splits"):
        class_layout([p[2:] for p in paths], None, "d", ["test/", "train/"])
    with pytest.raises(PipelineError, match="no folder named 'val'"):
        class_layout(paths, "val", "d", ["d/"])
    with pytest.raises(PipelineError, match="no class folders.*2 image"):
        class_layout(["a.jpg", "b.jpg"], None, "flat", ["a.jpg", "b.jpg"])


def test_names_are_normalised_and_hidden_or_escaping_ones_dropped():
    assert normalise_name("./cat//1.jpg") == "cat/1.jpg"
    assert normalise_name("../x/1.jpg") is None and normalise_name("__MACOSX/cat/1.jpg") is None
    assert normalise_name(".hidden/1.jpg") is None
