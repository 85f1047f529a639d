"""Corrupted copies of a split as ImageFolder trees, one per corruption and severity.

    python -m pipeline.data.corrupt --data DATA --split test --out runs/corrupted [--seed 0] \\
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

import cv2

from pipeline.data.corruptions import CORRUPTIONS, SEVERITIES, check_corruptions, corrupt
from pipeline.data.options import DataOptions, add_data_options
from pipeline.errors import PipelineError, cli_main


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PipelineError(f"--{what} takes comma-separated whole numbers, e.g. 1,2,3; got {text!r}") from None


def load_split(data: DataOptions, split: str, val_size: int, val_seed: int) -> tuple:
    """(images, labels, classes) of ``split``: train, test, or the seeded validation split of train."""
    from pipeline.data import load_dataset
    from pipeline.data.split import validation_split

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
    ap = argparse.ArgumentParser(prog="python -m pipeline.data.corrupt", description=__doc__.split("\n")[0])
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
