"""Camera-like corruptions of images, at three severities: what a model meets outside its dataset.

Gaussian sensor noise, defocus blur, JPEG compression, low contrast and fog (a smooth haze that
lifts and flattens the image), in the spirit of CIFAR-10-C (Hendrycks and Dietterich, 2019), with
strengths chosen for 32x32 images. Every corruption is deterministic for a seed: image i of a
split gets the same noise whatever else is corrupted in the same call.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from pipeline.errors import PipelineError

SEVERITIES = (1, 2, 3)


def _noise(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.04, 0.08, 0.12)[s - 1] * 255
    return img.astype(np.float32) + rng.normal(0.0, sigma, img.shape).astype(np.float32)


def _blur(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.6, 1.0, 1.5)[s - 1]
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT).astype(np.float32)


def _jpeg(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    quality = (30, 15, 8)[s - 1]
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise PipelineError("OpenCV could not JPEG-encode and decode an image; check the OpenCV install")
    return decoded.astype(np.float32)


def _contrast(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.5, 0.3, 0.15)[s - 1]
    x = img.astype(np.float32)
    mean = x.mean(axis=(0, 1), keepdims=True)  # (1, 1, 3)
    return (x - mean) * c + mean


def _fog(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Blend towards a bright, spatially smooth haze: two octaves of low-resolution noise, upsampled."""
    a = (0.35, 0.5, 0.65)[s - 1]
    h, w = img.shape[:2]
    haze = np.zeros((h, w), np.float32)
    for cells, weight in ((3, 0.65), (6, 0.35)):
        coarse = rng.random((cells, cells), dtype=np.float32)
        haze += weight * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    haze = 255.0 * (0.6 + 0.4 * np.clip(haze, 0.0, 1.0))  # (H, W), a light grey haze
    return img.astype(np.float32) * (1 - a) + a * haze[:, :, None]


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": _noise, "blur": _blur, "jpeg": _jpeg, "contrast": _contrast, "fog": _fog,
}


def check_corruptions(names: list[str] | tuple[str, ...], severities: list[int] | tuple[int, ...]) -> None:
    """Refuse unknown corruption names and severities before any work."""
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise PipelineError(f"unknown corruption {', '.join(unknown) or '(none given)'}; "
                            f"choose from {', '.join(CORRUPTIONS)}")
    bad = [s for s in severities if s not in SEVERITIES]
    if bad or not severities:
        raise PipelineError(f"severity must be one of {', '.join(map(str, SEVERITIES))}, got {bad or 'none'}")


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``images`` (N, H, W, 3) uint8 -> corrupted copies, same shape and dtype; the input is untouched.

    Image i's randomness comes from ``(seed, corruption, severity, i)`` alone.
    """
    check_corruptions([name], [severity])
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise PipelineError(f"corrupt() takes (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    fn = CORRUPTIONS[name]
    index = list(CORRUPTIONS).index(name)
    out = np.empty_like(images)
    for i, img in enumerate(images):
        rng = np.random.default_rng([seed, index, severity, i])
        out[i] = np.clip(np.rint(fn(img, severity, rng)), 0, 255).astype(np.uint8)
    return out
