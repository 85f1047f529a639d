"""ImageFolder loading from folders and tar archives, resizing, the decoded cache, and error messages."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from pipeline.data import ImageSet, load_dataset, load_imagefolder
from pipeline.errors import PipelineError


def _expected(made: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([img for cls in sorted(made) for img in made[cls]])  # (N, 8, 8, 3) BGR
    labels = np.array([k for k, cls in enumerate(sorted(made)) for _ in made[cls]], dtype=np.int64)
    return images, labels


def _check(data: ImageSet, made: dict[str, list[np.ndarray]]) -> None:
    images, labels = _expected(made)
    assert data.classes == tuple(sorted(made))
    assert data.images.dtype == np.uint8 and data.images.flags.c_contiguous
    assert data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels, labels)


def test_folder(make_tree):
    root, made = make_tree()
    (root / "cat" / "notes.txt").write_text("ignored")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")  # dotfiles are skipped
    _check(load_imagefolder(root), made)


def test_uppercase_extension_and_sorting(make_tree):
    root, made = make_tree(per_class=1)
    os.rename(root / "dog" / "00.png", root / "dog" / "B.PNG")
    ok, buf = cv2.imencode(".png", made["dog"][0][::-1].copy())
    (root / "dog" / "A.png").write_bytes(buf.tobytes())
    data = load_imagefolder(root)
    dog = data.images[data.labels == 1]
    np.testing.assert_array_equal(dog[0], made["dog"][0][::-1])  # A.png before B.PNG
    np.testing.assert_array_equal(dog[1], made["dog"][0])


@pytest.mark.parametrize("name", ["data.tar", "data.tar.gz", "data.tgz"])
def test_archive_with_top_folder(make_tree, make_tar, name):
    base, made = make_tree(prefix="mydata")
    _check(load_imagefolder(make_tar(base, name)), made)


def test_archive_without_top_folder(make_tree, make_tar):
    base, made = make_tree()
    _check(load_imagefolder(make_tar(base, "flat.tar")), made)


@pytest.mark.parametrize("as_archive", [False, True])
def test_nested_subdir(make_tree, make_tar, tmp_path, as_archive):
    base, train = make_tree(prefix="cifar10/train", seed=1)
    _, test = make_tree(prefix="cifar10/test", per_class=1, seed=2, classes=("cat", "dog"), base=base)
    source = make_tar(base, "nested.tar.gz") if as_archive else base
    _check(load_imagefolder(source, subdir="train"), train)
    _check(load_imagefolder(source, subdir="test"), test)
    _check(load_dataset(source, "test", cache_dir=tmp_path / "cache"), test)


def test_subdir_missing_lists_top_level(make_tree, make_tar):
    base, _ = make_tree(prefix="cifar10/train")
    archive = make_tar(base, "only_train.tar.gz")
    with pytest.raises(PipelineError, match=r"no folder named 'test'.*cifar10/"):
        load_imagefolder(archive, subdir="test")
    with pytest.raises(PipelineError, match=r"no folder named 'test'.*cifar10/"):
        load_dataset(base, "test", cache_dir=base.parent / "cache")


def test_split_folders_without_subdir(make_tree, make_tar):
    base, _ = make_tree(prefix="cifar10/train")
    make_tree(prefix="cifar10/test", base=base)
    with pytest.raises(PipelineError, match=r"look like splits \(test, train\).*subdir="):
        load_imagefolder(make_tar(base, "splits.tar"))


def test_resize_and_size_mismatch(make_tree):
    root, _ = make_tree(per_class=1)
    big = np.full((16, 12, 3), 7, dtype=np.uint8)
    ok, buf = cv2.imencode(".png", big)
    (root / "frog" / "99.png").write_bytes(buf.tobytes())
    with pytest.raises(PipelineError, match=r"99\.png is 16x12.*size="):
        load_imagefolder(root)
    data = load_imagefolder(root, size=(4, 6))
    assert data.images.shape == (4, 4, 6, 3)
    np.testing.assert_array_equal(data.images[-1], np.full((4, 6, 3), 7, np.uint8))  # INTER_AREA of a flat image


def test_cache_hit_skips_decoding(make_tree, make_tar, tmp_path, monkeypatch):
    base, made = make_tree(prefix="top")
    archive = make_tar(base, "cached.tar.gz")
    cache = tmp_path / "cache"
    first = load_imagefolder(archive, cache_dir=cache)
    assert len(list(cache.glob("imagefolder-*.json"))) == 1
    assert not list(cache.glob(".*"))  # no temp files left behind

    def boom(*args, **kwargs):
        raise AssertionError("decoded despite a cache hit")

    monkeypatch.setattr(cv2, "imdecode", boom)
    second = load_imagefolder(archive, cache_dir=cache)
    _check(second, made)
    assert second.classes == first.classes
    with pytest.raises(AssertionError, match="despite"):  # another size is another key
        load_imagefolder(archive, cache_dir=cache, size=(4, 4))


def test_cache_dir_source_sees_changes(make_tree, tmp_path):
    root, made = make_tree(per_class=1)
    cache = tmp_path / "cache"
    load_imagefolder(root, cache_dir=cache)
    _, more = make_tree(per_class=2, seed=5)  # rewrites 00.png, adds 01.png deep in class folders
    _check(load_imagefolder(root, cache_dir=cache), more)


def test_incomplete_cache_is_ignored(make_tree, tmp_path):
    root, made = make_tree()
    cache = tmp_path / "cache"
    load_imagefolder(root, cache_dir=cache)
    for meta in cache.glob("*.json"):
        meta.unlink()  # as if interrupted before the marker was written
    for npy in cache.glob("*.images.npy"):
        npy.write_bytes(npy.read_bytes()[:100])
    _check(load_imagefolder(root, cache_dir=cache), made)


def test_progress_callback(make_tree):
    root, _ = make_tree()
    calls = []
    load_imagefolder(root, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (6, 6)


def test_missing_source(tmp_path):
    with pytest.raises(PipelineError, match="does not exist"):
        load_imagefolder(tmp_path / "nope")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match=r"no class folders in .*empty.*<root>/<class>/<image>"):
        load_imagefolder(tmp_path / "empty")


def test_images_without_class_folders(make_tree, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    (flat / "a.png").write_bytes(buf.tobytes())
    (flat / "b.png").write_bytes(buf.tobytes())
    with pytest.raises(PipelineError, match=r"2 image\(s\) directly in it but no class folders"):
        load_imagefolder(flat)


@pytest.mark.parametrize("as_archive", [False, True])
def test_corrupt_image_named(make_tree, make_tar, as_archive):
    base, _ = make_tree(prefix="top")
    (base / "top" / "dog" / "bad.png").write_bytes(b"not a png at all")
    source = make_tar(base, "bad.tar.gz") if as_archive else base
    name = r"bad\.tar\.gz:top/dog/bad\.png" if as_archive else r"top/dog/bad\.png"
    with pytest.raises(PipelineError, match=rf"cannot decode image .*{name}"):
        load_imagefolder(source)


def test_not_an_archive(tmp_path):
    f = tmp_path / "data.txt"
    f.write_text("hello")
    with pytest.raises(PipelineError, match="not a tar archive"):
        load_imagefolder(f)


def test_truncated_archive(make_tree, make_tar):
    base, _ = make_tree(prefix="top", per_class=20, shape=(32, 32))
    archive = make_tar(base, "trunc.tar")
    archive.write_bytes(archive.read_bytes()[:20000])
    with pytest.raises(PipelineError, match=r"trunc\.tar"):
        load_imagefolder(archive)


def test_bad_size_argument(make_tree):
    root, _ = make_tree()
    with pytest.raises(PipelineError, match=r"\(height, width\)"):
        load_imagefolder(root, size=(0, 8))


def test_imageset_subset_and_checks():
    images = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    data = ImageSet(images, np.array([0, 1, 1, 0]), ("a", "b"))
    assert len(data) == 4 and data.labels.dtype == np.int64
    sub = data.subset(np.array([3, 1]))
    assert len(sub) == 2 and sub.classes == ("a", "b")
    np.testing.assert_array_equal(sub.images[0], images[3])
    np.testing.assert_array_equal(sub.labels, [0, 1])
    assert len(data.subset(np.array([], dtype=np.int64))) == 0
    with pytest.raises(ValueError):
        ImageSet(images.astype(np.float32), data.labels, data.classes)
    with pytest.raises(ValueError):
        ImageSet(images, np.array([0, 1, 2, 0]), ("a", "b"))


def test_unknown_split(make_tree, tmp_path):
    base, _ = make_tree(prefix="train")
    with pytest.raises(PipelineError, match="split must be"):
        load_dataset(base, "val", cache_dir=tmp_path / "cache")
