"""Any frame a source gives, to what the model's stage 1 takes: (H, W, 3) uint8 in its colour order.

Cameras and files hand over grey (H, W) or (H, W, 1), BGRA (H, W, 4), 16-bit frames and any
size. Normalisation is not done here: it lives inside stage 1's graph, like in training.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.geometry import fit_input, resize
from pipeline.errors import PipelineError


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Grey, BGR or BGRA, 8 or 16 bit -> (H, W, 3) uint8 BGR (the same array when already so)."""
    import cv2

    if image.dtype == np.uint16:  # 16-bit PNG/TIFF or a depth-style camera: keep the high byte
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise PipelineError(f"frames should be 8- or 16-bit integers; got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:  # (H, W) grey
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:  # (H, W, 4) BGRA: drop alpha
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise PipelineError(f"frames should be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {image.shape}")


def to_model_input(image: np.ndarray, size: tuple[int, int], colour_order: str = "BGR",
                   crop: bool = False, resize_shorter: int = 0) -> np.ndarray:
    """Any source frame -> (H, W, 3) uint8, C-contiguous, at the model's size and colour order.

    ``resize_shorter`` (the manifest's): a frame of another shape is resized and centre-cropped
    as the model was evaluated; otherwise it is resized (after a centre crop to the aspect with ``crop``).
    """
    import cv2

    order = colour_order.upper()
    if order not in ("BGR", "RGB"):
        raise PipelineError(f"the model's colour order should be BGR or RGB; the manifest says {colour_order!r}")
    bgr = to_bgr(image)
    out = fit_input(bgr, size, resize_shorter) if resize_shorter else resize(bgr, size, crop)  # (H, W, 3) BGR
    if order == "RGB":
        out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(out)
