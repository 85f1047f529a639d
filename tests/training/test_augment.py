"""Training augmentation: crop and flip, and cutout on top of the same crop and flip."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pipeline.models.preprocess import PreprocessConfig  # noqa: E402
from pipeline.training.augment import augment, mean_colour  # noqa: E402

FILL = (114, 123, 125)


def frames(n: int = 16) -> "torch.Tensor":
    g = torch.Generator().manual_seed(3)
    return torch.randint(1, 255, (n, 32, 32, 3), generator=g, dtype=torch.uint8)


def test_cutout_covers_one_square_and_leaves_the_crop_and_flip_as_they_were():
    x = frames()
    plain = augment(x, torch.Generator().manual_seed(7))
    cut = augment(x, torch.Generator().manual_seed(7), cutout=8, fill=FILL)
    differs = (cut != plain).any(-1)  # (N, H, W)
    filled = (cut == torch.tensor(FILL, dtype=torch.uint8)).all(-1)
    assert bool((differs <= filled).all())  # every changed pixel is the fill colour
    for i in range(len(x)):
        ys, xs = torch.nonzero(filled[i], as_tuple=True)
        assert 0 < len(ys) <= 64  # one square, clipped at a border at most
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert h <= 8 and w <= 8 and len(ys) == h * w  # a filled rectangle, not scattered pixels
    assert int(filled.sum()) > len(x) * 64 // 4  # most squares lie mostly inside a 32x32 image


def test_cutout_is_deterministic_for_a_seed_and_moves_with_it():
    x = frames()
    a = augment(x, torch.Generator().manual_seed(1), cutout=16, fill=FILL)
    b = augment(x, torch.Generator().manual_seed(1), cutout=16, fill=FILL)
    c = augment(x, torch.Generator().manual_seed(2), cutout=16, fill=FILL)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_without_cutout_the_frames_are_the_old_crop_and_flip():
    x = frames(4)
    out = augment(x, torch.Generator().manual_seed(0), cutout=0)
    assert out.shape == x.shape and out.dtype == torch.uint8
    # each output is a shifted (and maybe mirrored) window of the zero-padded input
    padded = torch.nn.functional.pad(x, (0, 0, 4, 4, 4, 4))
    for i in range(len(x)):
        found = any(torch.equal(out[i], win) for dy in range(9) for dx in range(9)
                    for win in (padded[i, dy:dy + 32, dx:dx + 32], padded[i, dy:dy + 32, dx:dx + 32].flip(1)))
        assert found


def test_the_fill_is_the_mean_colour_in_the_frames_channel_order():
    bgr = PreprocessConfig(mean=(0.4914, 0.4822, 0.4465), colour_order="BGR")
    rgb = PreprocessConfig(mean=(0.4914, 0.4822, 0.4465), colour_order="RGB")
    assert mean_colour(bgr) == (114, 123, 125)
    assert mean_colour(rgb) == (125, 123, 114)
