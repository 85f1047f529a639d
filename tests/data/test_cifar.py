"""CIFAR-10 python archive: pixel layout, recognition, damaged archives, and download without the network."""

from __future__ import annotations

import hashlib
import pickle
import urllib.request

import numpy as np
import pytest

from pipeline.data import cifar, download_cifar10, is_cifar10_archive, load_cifar10_archive, load_dataset
from pipeline.errors import PipelineError


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_train_pixels_are_bgr(make_cifar):
    data = load_cifar10_archive(make_cifar(), "train")
    assert data.images.shape == (20, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.images.flags.c_contiguous
    assert data.classes == tuple(f"class{k}" for k in range(10))
    np.testing.assert_array_equal(data.labels, [0, 1, 2, 3] * 5)
    assert data.labels.dtype == np.int64
    assert data.images[0, 1, 2].tolist() == [100, 150, 200]  # (row 1, col 2): B, G, R
    assert data.images[0, 2, 1].tolist() == [3, 2, 1]  # planes R=1, G=2, B=3 elsewhere
    assert data.images[5, 31, 31].tolist() == [13, 12, 11]  # second image of the second batch


def test_test_split(make_cifar):
    data = load_cifar10_archive(make_cifar(), "test")
    assert data.images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(data.labels, [0, 1, 2])


def test_is_cifar10_archive(make_cifar, make_tree, make_tar, tmp_path):
    assert is_cifar10_archive(make_cifar())
    base, _ = make_tree(prefix="top")
    assert not is_cifar10_archive(make_tar(base, "folder.tar.gz"))
    (tmp_path / "text").write_text("hi")
    assert not is_cifar10_archive(tmp_path / "text")
    assert not is_cifar10_archive(tmp_path / "missing.tar.gz")
    assert not is_cifar10_archive(base)


def test_missing_batch(make_cifar):
    archive = make_cifar(skip=("data_batch_3",))
    with pytest.raises(PipelineError, match="missing data_batch_3"):
        load_cifar10_archive(archive, "train")
    assert len(load_cifar10_archive(archive, "test")) == 3  # the test split does not need it


def test_truncated_archive(make_cifar):
    archive = make_cifar()
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(PipelineError, match="truncated or corrupt"):
        load_cifar10_archive(archive, "train")


def test_pickle_with_foreign_global_is_refused(make_cifar):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    archive = make_cifar(override={"test_batch": pickle.dumps({b"data": Evil()}, protocol=2)})
    with pytest.raises(PipelineError, match="not a CIFAR-10 python batch"):
        load_cifar10_archive(archive, "test")


def test_bad_split(make_cifar):
    with pytest.raises(PipelineError, match="'train' or 'test'"):
        load_cifar10_archive(make_cifar(), "val")


def test_download_from_file_url(make_cifar, tmp_path, monkeypatch):
    source = make_cifar("upstream.tar.gz")
    cache = tmp_path / "cache"
    got = download_cifar10(cache, url=source.as_uri(), md5=_md5(source))
    assert got == cache / "upstream.tar.gz" and got.read_bytes() == source.read_bytes()

    def offline(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert download_cifar10(cache, url=source.as_uri(), md5=_md5(source)) == got


def test_download_md5_mismatch(make_cifar, tmp_path):
    source = make_cifar("upstream.tar.gz")
    cache = tmp_path / "cache"
    with pytest.raises(PipelineError, match=r"md5 [0-9a-f]{32}, expected 0{32}"):
        download_cifar10(cache, url=source.as_uri(), md5="0" * 32)
    assert list(cache.iterdir()) == []  # the temp file is gone, nothing half-written


def test_download_failure_suggests_alternatives(tmp_path):
    url = (tmp_path / "nowhere.tar.gz").as_uri()
    with pytest.raises(PipelineError, match=r"(?s)nowhere\.tar\.gz.*by hand.*ImageFolder"):
        download_cifar10(tmp_path / "cache", url=url)


def test_load_dataset_dispatch(make_cifar, tmp_path, monkeypatch):
    archive = make_cifar()
    assert load_dataset(archive, "train", cache_dir=tmp_path / "c").images.shape == (20, 32, 32, 3)
    assert load_dataset(archive, "test", cache_dir=tmp_path / "c", size=(16, 16)).images.shape == (3, 16, 16, 3)
    monkeypatch.setattr(cifar, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(cifar, "CIFAR10_MD5", _md5(archive))
    data = load_dataset(None, "test", cache_dir=tmp_path / "dl")
    assert len(data) == 3 and (tmp_path / "dl" / archive.name).is_file()
