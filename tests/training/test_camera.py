"""Camera-like training augmentation (--camera-augment): what each perturbation does, and the option end to end."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pipeline.checkpoint import read_checkpoint  # noqa: E402
from pipeline.training.camera import camera_augment, gaussian_blur  # noqa: E402
from tests.training.conftest import run  # noqa: E402


def frames(n: int = 64, seed: int = 0):
    return torch.randint(0, 256, (n, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_off_leaves_the_frames_and_the_generator_as_they_were():
    x, gen = frames(), torch.Generator().manual_seed(1)
    assert camera_augment(x, gen, 0.0) is x
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=torch.Generator().manual_seed(1)))


def test_every_image_is_perturbed_at_one_and_the_draws_repeat_for_a_seed():
    x = frames()
    a = camera_augment(x, torch.Generator().manual_seed(3), 1.0)
    b = camera_augment(x, torch.Generator().manual_seed(3), 1.0)
    assert a.dtype == torch.uint8 and a.shape == x.shape and torch.equal(a, b)
    changed = (a != x).flatten(1).any(dim=1)
    assert float(changed.float().mean()) > 0.9  # only a draw at the very weak end of a range leaves one as it was
    assert not torch.equal(a, camera_augment(x, torch.Generator().manual_seed(4), 1.0))
    half = camera_augment(x, torch.Generator().manual_seed(3), 0.5)
    assert 0.2 < float((half != x).flatten(1).any(dim=1).float().mean()) < 0.8


def test_blur_keeps_flat_images_and_means_and_softens_edges():
    flat = torch.full((2, 3, 8, 8), 100.0)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.5, 1.2])), flat, atol=1e-4)
    edge = torch.zeros((1, 3, 8, 8))
    edge[..., 4:] = 255.0
    out = gaussian_blur(edge, torch.tensor([1.0]))
    assert 0 < float(out[0, 0, 0, 3]) < 255 and float(out[0, 0, 0, 3]) < float(out[0, 0, 0, 4])
    assert torch.allclose(out.mean(), edge.mean(), rtol=1e-4)  # reflected edges: symmetric step keeps its mean


def test_the_perturbed_images_are_noisier_softer_or_flatter():
    x = frames(200) // 2 + 64  # mid-range pixels: noise is not clipped
    out = camera_augment(x, torch.Generator().manual_seed(0), 1.0).float()
    src = x.float()
    # Each image's mean colour barely moves: noise is zero-mean (the mean of 256 draws of sigma <= 25.5 has a
    # standard error <= 1.6, and 600 such means stay within 6), blur and contrast keep the mean.
    assert float((out.mean(dim=(1, 2)) - src.mean(dim=(1, 2))).abs().max()) < 6.0
    # Blur and low contrast lower the spread of uniform random pixels; noise raises it (before clipping).
    spread = out.std(dim=(1, 2, 3)) / src.std(dim=(1, 2, 3))
    assert float(spread.min()) < 0.6 and float(spread.max()) >= 0.99


def test_a_run_records_the_option_resumes_with_it_and_refuses_a_bad_share(tmp_path, capsys):
    out = tmp_path / "cam.pt"
    assert run(tmp_path, out, "--epochs", "2", "--max-steps", "2", "--camera-augment", "0.5") == 0
    state = read_checkpoint(out)["train_state"]
    assert state["args"]["camera_augment"] == "0.5"
    assert run(tmp_path, out, "--epochs", "2", "--resume", "--camera-augment", "0.5") == 0
    with pytest.raises(SystemExit) as exc:  # without the option it is another run
        run(tmp_path, out, "--epochs", "3", "--resume")
    assert exc.value.code == 2 and "--camera-augment 0.5 (now 0.0)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, tmp_path / "bad.pt", "--epochs", "1", "--camera-augment", "1.5")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--camera-augment must be a share in [0, 1], got 1.5" in err
    assert "Traceback" not in err and not (tmp_path / "bad.pt").exists()
