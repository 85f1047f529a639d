"""Training augmentation on uint8 frames: random crop after zero padding, random horizontal flip.

It works on the (N, H, W, 3) uint8 batch before the model, so the model's own first layer does all
the normalising, as it does in the exported stage 1 graph.
"""

from __future__ import annotations

from typing import Any


def augment(frames: Any, gen: Any, pad: int = 4) -> Any:
    """Random crop after zero padding and random horizontal flip. (N, H, W, 3) uint8 -> same."""
    import torch

    n, h, w, _ = frames.shape
    padded = torch.nn.functional.pad(frames, (0, 0, pad, pad, pad, pad))  # (N, H+2p, W+2p, 3)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (N, 1, W)
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.where(flip[:, None, None], (w - 1 - (cols - dx[:, None, None])) + dx[:, None, None], cols)
    return padded[torch.arange(n)[:, None, None], rows, cols]
