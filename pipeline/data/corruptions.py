"""Camera-like corruptions of images, at three severities: what a model meets outside its dataset.

Gaussian sensor noise, defocus blur, JPEG compression, low contrast and fog (a smooth haze that
lifts and flattens the image), in the spirit of CIFAR-10-C (Hendrycks and Dietterich, 2019), with
strengths chosen for 32x32 images. Every corruption is deterministic for a seed: image i of a
split gets the same noise whatever else is corrupted in the same call.

As a command, corrupted copies of a split as ImageFolder trees, one per corruption and severity:

    anytime corrupt --data DATA --split test --out runs/corrupted [--seed 0] \\
        [--corruptions gaussian_noise,blur,jpeg,contrast,fog] [--severities 1,2,3] [--limit N]

writes ``OUT/<corruption>-<severity>/<split>/<class>/<index>.png``, which every command reads as
``--data OUT/<corruption>-<severity>`` (``--split validation`` is written as a ``test/`` folder, so
that evaluating it there reads exactly those images). Each tree is written into a temporary folder
and renamed into place; an existing tree is left alone (delete it to make it again).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.data.options import DataOptions, add_data_options
from pipeline.errors import PipelineError, cli_main

SEVERITIES = (1, 2, 3)


def _noise(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.04, 0.08, 0.12)[s - 1] * 255
    return img.astype(np.float32) + rng.normal(0.0, sigma, img.shape).astype(np.float32)


def _blur(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    sigma = (0.6, 1.0, 1.5)[s - 1]
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT).astype(np.float32)


def _jpeg(img: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

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
    import cv2

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


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PipelineError(f"--{what} takes comma-separated whole numbers, e.g. 1,2,3; got {text!r}") from None


def load_split(data: DataOptions, split: str, val_size: int, val_seed: int) -> tuple:
    """(images, labels, classes) of ``split``: train, test, or the seeded validation split of train."""
    from pipeline.data import load_dataset
    from pipeline.data.splits import validation_split

    if split not in ("train", "validation", "test"):
        raise PipelineError(f"--split must be train, validation or test, got {split!r}")
    images = load_dataset(data.source or None, "test" if split == "test" else "train", cache_dir=data.cache_dir)
    if len(images) == 0:
        raise PipelineError(f"the {split} split of {data.source or 'CIFAR-10'} holds no images; "
                            "point --data at a folder with images in <split>/<class>/")
    x, y = images.images, images.labels
    if split == "validation":
        _, idx = validation_split(y, size=val_size, seed=val_seed)
        x, y = x[idx], y[idx]
    return x, y, list(images.classes)


def write_tree(root: Path, split_dir: str, images, labels, classes: list[str]) -> None:
    """One ImageFolder tree, written beside ``root`` and renamed into place."""
    import cv2

    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for c in classes:
            (tmp / split_dir / c).mkdir(parents=True)
        for i, (img, lab) in enumerate(zip(images, labels)):
            path = tmp / split_dir / classes[int(lab)] / f"{i:05d}.png"
            if not cv2.imwrite(str(path), img):
                raise PipelineError(f"could not write {path}; check the free space and permissions of {root.parent}")
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="anytime corrupt", description="Corrupted copies of a split as ImageFolder "
                                 "trees, one per corruption and severity.")
    add_data_options(ap, help="the images to corrupt")
    ap.add_argument("--split", default="test", help="train, validation or test")
    ap.add_argument("--out", type=Path, required=True, help="folder of the corrupted trees")
    ap.add_argument("--corruptions", default=",".join(CORRUPTIONS))
    ap.add_argument("--severities", default=",".join(map(str, SEVERITIES)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="only the first N images of the split (0: all)")
    ap.add_argument("--val-size", type=int, default=5000, help="the validation split, as training drew it")
    ap.add_argument("--val-seed", type=int, default=0)
    args = ap.parse_args(argv)
    names = [n for n in args.corruptions.split(",") if n.strip()]
    severities = _int_list(args.severities, "severities")
    check_corruptions(names, severities)
    if args.seed < 0 or args.limit < 0:
        raise PipelineError("--seed and --limit must not be negative")
    if args.out.exists() and not args.out.is_dir():
        raise PipelineError(f"--out {args.out} is a file; name a folder")
    x, y, classes = load_split(DataOptions.from_args(args), args.split, args.val_size, args.val_seed)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    split_dir = "train" if args.split == "train" else "test"
    for name in names:
        for s in severities:
            root = args.out / f"{name}-{s}"
            if root.exists():
                print(f"{root}: already there, left alone", flush=True)
                continue
            write_tree(root, split_dir, corrupt(x, name, s, args.seed), y, classes)
            print(f"{root}: {len(y)} images", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
