"""Camera-like training augmentation (``--camera-augment P``): sensor noise, defocus and low contrast.

A camera's frames are noisier, softer and flatter than a dataset's photographs, and a model that never
saw such frames in training loses most of its accuracy on them (the model card's corruption table).
With probability ``P`` an image gets one of three perturbations, drawn uniformly, at a strength drawn
uniformly from a range that reaches about the middle severity of ``pipeline.data.corruptions``:

- sensor noise: additive Gaussian noise, sigma up to 10% of the pixel range;
- defocus: a Gaussian blur, sigma 0.3 to 1.2 pixels (7-tap separable kernel, edges reflected);
- low contrast: the image pulled towards its mean colour, keeping 25% to 100% of its contrast.

Strengths are continuous, not the evaluation's fixed levels, and JPEG and fog are left out, so the
corruption table still measures how the model meets perturbations it was not trained on exactly.
Everything runs on the (N, H, W, 3) uint8 batch in torch, drawn from the run's generator.
"""

from __future__ import annotations

from typing import Any

KINDS = ("noise", "blur", "contrast")
NOISE_SIGMA = 0.10 * 255
BLUR_SIGMA = (0.3, 1.2)
CONTRAST_KEEP = (0.25, 1.0)
TAPS = 7


def gaussian_blur(x: Any, sigma: Any) -> Any:
    """Blur float images ``x`` (N, 3, H, W), image i with ``sigma[i]``: one separable 7-tap Gaussian each."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    r = TAPS // 2
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype)[None, :] / sigma[:, None]) ** 2)  # (N, TAPS)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (N*3, TAPS)
    flat = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="reflect")
    flat = F.conv2d(flat, k[:, None, None, :], groups=n * c)  # along W
    flat = F.conv2d(flat, k[:, None, :, None], groups=n * c)  # along H
    return flat.reshape(n, c, h, w)


def camera_augment(frames: Any, gen: Any, p: float) -> Any:
    """``frames`` (N, H, W, 3) uint8 -> same, with a perturbation on each image with probability ``p``.

    Draws nothing from ``gen`` where ``p`` is 0, so a run without the option sees the frames it saw before
    the option existed."""
    import torch

    if p <= 0:
        return frames
    n = frames.shape[0]
    hit = torch.rand(n, generator=gen) < p
    kind = torch.randint(0, len(KINDS), (n,), generator=gen)
    strength = torch.rand(n, generator=gen)  # (N,) in [0, 1): where in each kind's range
    noise = torch.randn(frames.shape, generator=gen)  # drawn for all, so the draws do not depend on the mix
    x = frames.permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    out = x.clone()
    sel = hit & (kind == 0)
    out[sel] += (noise.permute(0, 3, 1, 2)[sel] * (strength[sel] * NOISE_SIGMA)[:, None, None, None])
    sel = hit & (kind == 1)
    if bool(sel.any()):
        lo, hi = BLUR_SIGMA
        out[sel] = gaussian_blur(x[sel], lo + (hi - lo) * strength[sel])
    sel = hit & (kind == 2)
    lo, hi = CONTRAST_KEEP
    keep = (lo + (hi - lo) * strength[sel])[:, None, None, None]
    mean = x[sel].mean(dim=(2, 3), keepdim=True)
    out[sel] = (x[sel] - mean) * keep + mean
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
