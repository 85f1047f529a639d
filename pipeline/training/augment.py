"""Training augmentation on uint8 frames: random crop after zero padding, random horizontal flip, and
optionally cutout (DeVries and Taylor, 2017: one square per image set to the mean colour).

It works on the (N, H, W, 3) uint8 batch before the model, so the model's own first layer does all
the normalising, as it does in the exported stage 1 graph. Cutout fills with the mean colour, which
normalises to zero, as the cutout paper's normalised tensors did.
"""

from __future__ import annotations

from typing import Any, Sequence


def augment(frames: Any, gen: Any, pad: int = 4, cutout: int = 0, fill: Sequence[int] = (0, 0, 0)) -> Any:
    """Random crop after zero padding and random horizontal flip, then, with ``cutout`` > 0, one
    ``cutout`` x ``cutout`` square per image at a uniformly drawn centre (clipped at the borders, so
    a square near an edge covers less) set to ``fill``. (N, H, W, 3) uint8 -> same.

    The crop and flip draws come first and are the same with or without cutout, so a run without it
    sees exactly the frames it saw before the option existed."""
    import torch

    n, h, w, _ = frames.shape
    padded = torch.nn.functional.pad(frames, (0, 0, pad, pad, pad, pad))  # (N, H+2p, W+2p, 3)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (N, 1, W)
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.where(flip[:, None, None], (w - 1 - (cols - dx[:, None, None])) + dx[:, None, None], cols)
    out = padded[torch.arange(n)[:, None, None], rows, cols]
    if cutout <= 0:
        return out
    cy = torch.randint(0, h, (n,), generator=gen)
    cx = torch.randint(0, w, (n,), generator=gen)
    half = cutout // 2
    ys, xs = torch.arange(h)[None, :], torch.arange(w)[None, :]
    in_rows = (ys >= (cy - half)[:, None]) & (ys < (cy - half + cutout)[:, None])  # (N, H)
    in_cols = (xs >= (cx - half)[:, None]) & (xs < (cx - half + cutout)[:, None])  # (N, W)
    square = in_rows[:, :, None] & in_cols[:, None, :]  # (N, H, W)
    colour = torch.tensor(list(fill), dtype=out.dtype)
    return torch.where(square[..., None], colour, out)


def mean_colour(preprocess: Any) -> tuple[int, ...]:
    """The uint8 frame colour that the model's normalisation maps to zero, in the frames' channel order."""
    return tuple(int(round(255 * m)) for m in preprocess.in_frame_order(preprocess.mean))
