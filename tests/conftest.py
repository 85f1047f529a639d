"""Shared tiny fixtures: a three-exit MSDNet small enough to build, train and export in seconds."""

from __future__ import annotations

import pytest

TINY = dict(n_blocks=3, step=1, base=2, n_channels=8, growth_rate=4)


@pytest.fixture
def tiny_model():
    torch = pytest.importorskip("torch")
    from pipeline.models import create_model

    torch.manual_seed(0)
    return create_model("msdnet_cifar", **TINY).eval()
