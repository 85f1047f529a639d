"""The one definition of preprocessing: uint8 frame in, normalised float tensor out.

It is the first layer of stage 1, so training, calibration, evaluation and the exported ONNX graph
all run this same code, and the camera app hands the engine raw OpenCV frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from pipeline.errors import PipelineError

# Per-channel statistics of CIFAR-10's training images, RGB order, on the 0..1 scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


MAX_SIDE = 8192  # pixels: the largest input side a config may ask for


@dataclass(frozen=True)
class PreprocessConfig:
    """What the model expects: frame size, the colour order of the uint8 frame, RGB mean and std, and how
    an image of another shape is brought to the frame size (``resize_shorter``)."""

    height: int = 32
    width: int = 32
    colour_order: str = "BGR"  # the uint8 frame's channel order; OpenCV decodes and captures BGR
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD
    # 0: an image of another shape is resized to (height, width). n > 0: its shorter side is resized to n
    # (aspect kept), then the centre (height, width) is cut out: ImageNet's "resize 256, centre crop 224".
    resize_shorter: int = 0

    def in_frame_order(self, rgb: tuple[float, float, float]) -> tuple[float, float, float]:
        """Per-channel values given in RGB (``mean``, ``std``) in the uint8 frame's channel order."""
        return (rgb[2], rgb[1], rgb[0]) if self.colour_order == "BGR" else rgb

    def __post_init__(self) -> None:
        for name in ("height", "width"):  # checked before any tensor of that size is made
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
                raise PipelineError(f"the input {name} must be a whole number of pixels from 1 to {MAX_SIDE}, got "
                                    f"{value!r}; the checkpoint's preprocessing config is damaged or mistyped")
        if self.resize_shorter and self.resize_shorter < max(self.height, self.width):
            raise PipelineError(f"resize_shorter {self.resize_shorter} is smaller than the {self.height}x{self.width} "
                                "crop it should hold; use 0 (plain resize) or at least the larger side")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})


class Preprocess(nn.Module):
    """(N, H, W, 3) uint8 in ``colour_order`` -> (N, 3, H, W) float32, RGB, (x / 255 - mean) / std."""

    def __init__(self, cfg: PreprocessConfig) -> None:
        super().__init__()
        if cfg.colour_order not in ("BGR", "RGB"):
            raise PipelineError(f"colour_order must be 'BGR' or 'RGB', got {cfg.colour_order!r}; fix the model config")
        # Normalise in the frame's own order, then reorder to RGB.
        mean = torch.tensor(cfg.in_frame_order(cfg.mean), dtype=torch.float32)
        std = torch.tensor(cfg.in_frame_order(cfg.std), dtype=torch.float32)
        # Folded into one multiply-add: x * scale + shift, shapes (1, 3, 1, 1).
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (-mean / std).view(1, 3, 1, 1), persistent=False)
        self.swap = cfg.colour_order == "BGR"

    scale: torch.Tensor  # (1, 3, 1, 1), registered as buffers: they follow the module's device
    shift: torch.Tensor

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float() * self.scale + self.shift  # (N, 3, H, W)
        return x.flip(1) if self.swap else x
