"""Corruptions: deterministic for a seed, each one changes the image the way it says, the command's trees."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.corruptions import main as corrupt_main
from pipeline.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from pipeline.errors import PipelineError


def images(n: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 216, size=(n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 30, (n, 32, 32, 3)), 0, 255).astype(np.uint8)  # (N, 32, 32, 3)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_deterministic_and_grows_with_severity(name):
    x = images()
    before = x.copy()
    dist = []
    for s in SEVERITIES:
        a, b = corrupt(x, name, s, seed=3), corrupt(x, name, s, seed=3)
        assert a.dtype == np.uint8 and a.shape == x.shape
        assert np.array_equal(a, b)
        dist.append(np.abs(a.astype(int) - x).mean())
    assert np.array_equal(x, before)  # the input is untouched
    assert 0 < dist[0] < dist[1] < dist[2], dist


def test_image_i_does_not_depend_on_the_other_images():
    x = images(6)
    # randomness is drawn per image index: the first images get the same corruption in a shorter call
    assert np.array_equal(corrupt(x, "fog", 2, seed=1)[:3], corrupt(x[:3], "fog", 2, seed=1))
    assert not np.array_equal(corrupt(x, "fog", 2, seed=1), corrupt(x, "fog", 2, seed=2))


def test_contrast_keeps_the_mean_and_shrinks_the_spread():
    x = images(4)
    y = corrupt(x, "contrast", 3).astype(float)
    assert np.allclose(y.mean(axis=(1, 2)), x.astype(float).mean(axis=(1, 2)), atol=1.0)
    assert (y.std(axis=(1, 2)) < 0.2 * x.astype(float).std(axis=(1, 2))).all()


@pytest.mark.parametrize("name,severity,message", [("snow", 1, "unknown corruption snow"),
                                                   ("blur", 4, "severity must be one of 1, 2, 3")])
def test_bad_names_and_severities_are_refused(name, severity, message):
    with pytest.raises(PipelineError, match=message):
        corrupt(images(1), name, severity)


def test_the_command_writes_imagefolder_trees_that_load_back(make_tree, tmp_path):
    from pipeline.data import load_dataset

    base, made = make_tree(prefix="test", per_class=2, shape=(8, 8))
    out = tmp_path / "corrupted"
    argv = ["--data", str(base), "--cache-dir", str(tmp_path / "cache"), "--split", "test", "--out", str(out),
            "--corruptions", "blur,jpeg", "--severities", "1,3"]
    assert corrupt_main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["blur-1", "blur-3", "jpeg-1", "jpeg-3"]
    back = load_dataset(out / "blur-3", "test", cache_dir=tmp_path / "cache2")
    clean = load_dataset(base, "test", cache_dir=tmp_path / "cache")
    assert list(back.classes) == list(clean.classes) and len(back) == len(clean)
    assert np.array_equal(back.images, corrupt(clean.images, "blur", 3, seed=0))
    first = (out / "jpeg-1").stat().st_mtime_ns
    assert corrupt_main(argv) == 0  # a second run leaves the trees alone
    assert (out / "jpeg-1").stat().st_mtime_ns == first
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("setup,message", [("missing", "does not exist"), ("empty", "")])
def test_the_command_names_a_missing_or_empty_split(tmp_path, capsys, setup, message):
    data = tmp_path / "data"
    if setup == "empty":
        (data / "test").mkdir(parents=True)
    with pytest.raises(SystemExit) as exc:
        corrupt_main(["--data", str(data), "--cache-dir", str(tmp_path / "c"), "--split", "test",
                      "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "test" in err and message in err
    assert not (tmp_path / "out").exists()
