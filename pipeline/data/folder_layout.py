"""Where the classes are in an ImageFolder listing (``<root>/<class>/<image>``), and what a name is.

Shared by the directory and the archive readers of :mod:`pipeline.data.imagefolder`: both turn
their source into a list of relative image paths, and this module picks the folder whose
sub-folders are the classes (a single wrapper folder is looked through; a named split is found at
its shallowest depth), refuses split folders taken for classes, and words the errors that say
which layout was expected.
"""

from __future__ import annotations

import os

import numpy as np

from pipeline.errors import PipelineError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
LAYOUT = "<root>/<class>/<image>"
Layout = tuple[tuple[str, ...], list[str], np.ndarray]  # classes, files (label order), labels (N,) int64

_SPLIT_NAMES = frozenset({"train", "test", "val", "valid", "validation"})


def visible(name: str) -> bool:
    """Skip dotfiles and the ``__MACOSX`` junk that macOS adds to archives."""
    return not name.startswith(".") and name != "__MACOSX"


def normalise_name(name: str) -> str | None:
    """``./a//b/`` -> ``a/b``; None for hidden, ``..`` or empty names."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or not visible(p) for p in parts):
        return None
    return "/".join(parts)


def is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def top_names(names: list[str]) -> list[str]:
    """Top-level entries of an archive listing, ``dir/`` for folders (members may omit folder entries)."""
    top: set[str] = set()
    for n in names:
        head, sep, _ = n.partition("/")
        top.add(head + sep)
    return sorted(top)


def class_layout(paths: list[str], subdir: str | None, where: str, top: list[str]) -> Layout:
    """Pick the class root among image ``paths`` and return (classes, files in label order, labels)."""
    root = find_root(paths, subdir, where, top)
    shown = f"{where} (folder {root}/)" if root else where
    prefix = root + "/" if root else ""
    by_class: dict[str, list[str]] = {}
    stray = 0
    for p in paths:
        if not p.startswith(prefix):
            continue
        cls, sep, rest = p[len(prefix):].partition("/")
        if sep:
            by_class.setdefault(cls, []).append(rest)
        else:
            stray += 1
    if not by_class:
        found = f"found {stray} image(s) directly in it but no class folders" if stray else "found no images in it"
        raise PipelineError(
            f"no class folders in {shown}: {found}. Expected the layout {LAYOUT} "
            f"(e.g. {LAYOUT.replace('<root>', 'data').replace('<class>', 'cat').replace('<image>', '0001.jpg')}), "
            f"with images ending in {', '.join(sorted(IMAGE_EXTENSIONS))}"
        )
    classes = tuple(sorted(by_class))
    if subdir is None and set(classes) <= _SPLIT_NAMES and all("/" in r for c in classes for r in by_class[c]):
        raise PipelineError(
            f"the folders in {shown} look like splits ({', '.join(classes)}), not classes: expected {LAYOUT}. "
            f"Pass subdir={classes[-1]!r} (or the split option) to load one split"
        )
    files: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        for rest in sorted(by_class[cls]):
            files.append(f"{prefix}{cls}/{rest}")
            labels.append(label)
    return classes, files, np.asarray(labels, dtype=np.int64)  # (N,) int64


def find_root(paths: list[str], subdir: str | None, where: str, top: list[str]) -> str:
    """The folder (relative, "" for the top) whose sub-folders are the classes."""
    if subdir is not None:
        want = "/".join(p for p in subdir.replace("\\", "/").split("/") if p)
        folders = {p.rsplit("/", k)[0] for p in paths for k in range(1, p.count("/") + 1)}
        hits = [f for f in folders if f == want or f.endswith("/" + want)]
        if not hits:
            raise PipelineError(
                f"no folder named {subdir!r} in {where}: found at top level: {listing(top)}. "
                f"Expected {LAYOUT.replace('<root>', '<root>/' + want)} (optionally inside one top-level folder); "
                f"check the source or the split name"
            )
        depth = min(f.count("/") for f in hits)
        best = sorted(f for f in hits if f.count("/") == depth)
        if len(best) > 1:
            raise PipelineError(
                f"several folders named {subdir!r} at the same depth in {where}: {listing(best)}; "
                f"pass a longer subdir (e.g. {best[0]!r}) to pick one"
            )
        return best[0]
    heads = {p.split("/", 1)[0] for p in paths}
    # One top-level folder that holds only folders (no images directly): treat it as a wrapper.
    if len(heads) == 1 and all(p.count("/") >= 2 for p in paths):
        return heads.pop()
    return ""


def listing(names: list[str], limit: int = 12) -> str:
    if not names:
        return "(nothing)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
