"""Test doubles for the temporal cascade: a colour-classifying chain, textured scenes, a stream of them."""

from __future__ import annotations

import numpy as np

from pipeline.backends.base import StageChain
from pipeline.runtime.cascade import Cascade
from pipeline.runtime.deadline import LatencyPredictor

CLASSES = ["blue", "green", "red"]  # the dominant channel, BGR


class ColourChain(StageChain):
    """Exit k's logits are the frame's channel means times k / 10: the dominant channel, surer with depth."""

    backend, precision = "double", "fp32"
    num_stages = 3

    def __init__(self) -> None:
        self.runs: list[int] = []

    def activate(self) -> None:
        pass

    def set_frame(self, frame: np.ndarray) -> None:
        self.means = frame.reshape(-1, 3).mean(0)  # (3,) B, G, R

    def run(self, stage: int) -> np.ndarray:
        self.runs.append(stage)
        return (self.means * stage / 10.0).astype(np.float32)[None]  # (1, 3)


def colour_cascade(thresholds=(0.99, 0.999, 1.0), aggregate: str = "last") -> Cascade:
    return Cascade(ColourChain(), CLASSES, list(thresholds), LatencyPredictor(3, [1.0] * 3), aggregate=aggregate,
                   frame_size=(32, 32), colour_order="BGR")


def scene(label: int, seed: int, lead: float = 60.0) -> np.ndarray:
    """(32, 32, 3) uint8: a smooth grey texture of its own, with channel ``label`` ``lead`` levels above the others."""
    import cv2

    rng = np.random.default_rng(seed)
    tex = cv2.resize(rng.uniform(40, 160, (6, 6)).astype(np.float32), (32, 32), interpolation=cv2.INTER_CUBIC)
    img = np.repeat(tex[:, :, None], 3, axis=2)
    img[:, :, label] += lead
    return np.clip(img, 0, 255).astype(np.uint8)


def noisy(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)
