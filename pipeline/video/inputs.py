"""What a run reads, read and checked before anything is written: the engines folder, the source,
the labels, and every output's path (writable, and never one of the inputs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.manifest import MANIFEST_NAME
from pipeline.video.labels import LabelFile, read_labels
from pipeline.video.options import CameraOptions
from pipeline.video.outputs import check_output, refuse_inputs
from pipeline.video.sources import SourceSpec, parse_source
from pipeline.video.writer import check_video_path


@dataclass(frozen=True)
class Inputs:
    """What a run reads, read and checked before anything is written."""

    folder: Path
    spec: SourceSpec
    labels: LabelFile | None
    files: tuple[tuple[str, Path], ...] = ()  # (option, path) of every file read, which no output may be


def check_engines(folder: Path) -> Path:
    """``folder`` when it holds a manifest; otherwise a PipelineError naming the built models inside it."""
    if (folder / MANIFEST_NAME).is_file():
        return folder
    if not folder.is_dir():
        raise PipelineError(f"engines folder {folder} not found: build it with `make engines`, then pass "
                            f"--engines engines/<model> (the folder that holds {MANIFEST_NAME})")
    inside = sorted(str(p.parent) for p in folder.glob(f"*/{MANIFEST_NAME}")
                    if not p.parent.name.startswith("."))  # a build's temporary folder is no model
    hint = f"; built models inside it: {', '.join(inside)}" if inside else \
        " (an interrupted build leaves none); run `make engines`"
    raise PipelineError(f"engines folder {folder} has no {MANIFEST_NAME}, so it is not a built model{hint}")


def check_images(paths: Sequence[str]) -> None:
    """Refuse, before anything is written, an image of the source that OpenCV has no decoder for (its first
    bytes are no image format's): the run would otherwise stop at it, its outputs part-written."""
    import cv2

    for path in paths:
        if not cv2.haveImageReader(path):
            raise PipelineError(f"source image {path} is not an image OpenCV can decode (by its first bytes); "
                                "remove it from the source")


def read_inputs(options: CameraOptions) -> Inputs:
    """Check the engines folder and the source, read the labels, and check every output's path."""
    folder = check_engines(options.engines)
    spec = parse_source(options.source)
    check_images(spec.paths)
    labels = read_labels(options.labels) if options.labels is not None else None
    sources: list[tuple[str, Path]] = [("--source", Path(p)) for p in spec.paths]
    if spec.kind == "file":
        sources.append(("--source", Path(str(spec.target))))
    if options.labels is not None:
        sources.append(("--labels", options.labels))
    sources.append(("the manifest", folder / MANIFEST_NAME))
    refuse_inputs(options.outputs(), sources)  # first: an output that is an input is told as such
    if options.output is not None:
        check_video_path(options.output)
    if options.log is not None:
        check_output(options.log, "the log")
    return Inputs(folder, spec, labels, tuple(sources))
