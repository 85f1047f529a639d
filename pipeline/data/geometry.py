"""Image geometry shared by the data loaders and the camera: centre crops and resizes to a model's input size.

The model was evaluated on images brought to its input size by these functions, so the camera
brings its frames there by the same ones (``pipeline.video.frames``).
"""

from __future__ import annotations

import numpy as np


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
