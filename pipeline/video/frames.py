"""Any frame a source gives, to what the model's stage 1 takes: (H, W, 3) uint8 in its colour order.

Cameras and files hand over grey (H, W) or (H, W, 1), BGRA (H, W, 4), 16-bit frames and any
size. Normalisation is not done here: it lives inside stage 1's graph, like in training.
"""

from __future__ import annotations

import numpy as np

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


def centre_crop(image: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred window with width/height == ``aspect``. (H, W, C) -> (h', w', C), a view."""
    h, w = image.shape[:2]
    if w / h > aspect:  # too wide: trim the sides
        cw = max(1, round(h * aspect))
        x0 = (w - cw) // 2
        return image[:, x0:x0 + cw]
    ch = max(1, round(w / aspect))
    y0 = (h - ch) // 2
    return image[y0:y0 + ch]


def resize(image: np.ndarray, size: tuple[int, int], crop: bool = False) -> np.ndarray:
    """(h, w, C) -> (H, W, C) with ``size`` = (H, W); area interpolation (no aliasing when shrinking).

    With ``crop`` the centre is cut to the target's aspect first, so objects are not squashed.
    """
    import cv2

    height, width = size
    if crop:
        image = centre_crop(image, width / height)
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def resize_and_crop(image: np.ndarray, size: tuple[int, int], shorter: int) -> np.ndarray:
    """The centre (H, W) of ``image`` once its shorter side is resized to ``shorter`` (aspect kept).

    ImageNet's evaluation transform (resize 256, centre crop 224), done the cheap way round: the
    window that becomes the crop is cut from the frame first, and only it is resized.
    """
    import cv2

    height, width = size
    h, w = image.shape[:2]
    scale = shorter / min(h, w)  # frame pixels -> resized pixels
    ch, cw = min(h, max(1, round(height / scale))), min(w, max(1, round(width / scale)))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    window = image[y0:y0 + ch, x0:x0 + cw]
    if window.shape[:2] == (height, width):
        return window
    shrink = ch > height or cw > width
    return cv2.resize(window, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def fit_input(image: np.ndarray, size: tuple[int, int], resize_shorter: int = 0) -> np.ndarray:
    """(h, w, C) -> (H, W, C) as the model's preprocessing says; the same array when already (H, W).

    ``resize_shorter`` 0 resizes (squashes) to ``size``; n > 0 resizes the shorter side to n and cuts
    the centre ``size`` (``resize_and_crop``). The data loaders and the camera app both read images here.
    """
    if image.shape[:2] == tuple(size):
        return image
    return resize_and_crop(image, size, resize_shorter) if resize_shorter else resize(image, size)


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
