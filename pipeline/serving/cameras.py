"""What each simulated camera shows: generated test clips (labelled), or real sources given with ``--source``.

Generated clips are the video benchmark's: scenes of test-split images filmed by a moving camera,
joined by cuts (:mod:`pipeline.video.scenes`), converted to the model's input as the camera app
does. A few distinct clips are rendered and shared: camera i shows clip ``i % clips`` from its
own starting frame, looping, so cameras do not show the same frame at the same time. A video
file or an image folder is read once into memory and looped the same way; a live source
(a camera, a stream) is read as it comes, its newest frame taken at each tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.errors import PipelineError
from pipeline.manifest import Manifest

DISTINCT_CLIPS = 4
MAX_SCENES = 24  # about 1000 frames per clip; cameras loop past it


@dataclass
class Feed:
    """A camera's frames: (F, H, W, 3) uint8 model inputs and (F,) labels (-1 where unknown), looped from ``start``."""

    name: str
    frames: np.ndarray
    labels: np.ndarray | None
    start: int = 0
    live: Any = None  # a FrameStream for a live source; frames then holds its last frame
    convert: Any = None  # frame -> model input, for a live source

    def at(self, tick: int) -> tuple[np.ndarray, int]:
        """The frame shown at ``tick`` and its label (-1 where unknown)."""
        if self.live is not None:
            got = self.live.read(timeout=0.0)
            if got is not None:
                self.frames = self.convert(got.image)[None]
            return self.frames[0], -1
        i = (self.start + tick) % len(self.frames)
        return self.frames[i], int(self.labels[i]) if self.labels is not None else -1

    def close(self) -> None:
        if self.live is not None:
            self.live.close()


def clip_feeds(manifest: Manifest, data: str, cache_dir: Path, cameras: int, frames_needed: int, seed: int = 0,
               split: str = "test") -> list[Feed]:
    """Generated clips from ``split`` for ``cameras`` cameras, long enough for ``frames_needed`` where they can be."""
    from pipeline.data.splits import split_images
    from pipeline.apps.temporal_calibrate import clip_frames
    from pipeline.video.scenes import ClipSpec, plan_clip

    images, labels = split_images(manifest, data, split, cache_dir)
    size, order = manifest.input.size or (images.shape[1], images.shape[2]), manifest.input.colour_order or "BGR"
    spec = ClipSpec()
    scenes = max(2, min(MAX_SCENES, math.ceil(frames_needed / ((spec.min_frames + spec.max_frames) / 2)) + 1))
    clips = []
    for c in range(min(cameras, DISTINCT_CLIPS)):
        plan = plan_clip(labels, ClipSpec(scenes=scenes), seed + c)
        clips.append((clip_frames(plan, images, size, order), np.asarray(plan.frame_labels())))
    feeds = []
    for i in range(cameras):
        frames, truth = clips[i % len(clips)]
        start = (i // len(clips)) * len(frames) // max(1, math.ceil(cameras / len(clips)))
        feeds.append(Feed(f"camera {i}", frames, truth, start))
    return feeds


def source_feeds(manifest: Manifest, sources: Sequence[str], cameras: int, max_frames: int) -> list[Feed]:
    """Cameras showing ``sources`` in turn: files and image folders read (up to ``max_frames``), live ones streamed."""
    from pipeline.video.capture import open_stream
    from pipeline.video.frames import to_model_input
    from pipeline.video.sources import parse_source

    size = manifest.input.size
    if size is None:
        raise PipelineError("the manifest does not fix the model's input size; --source needs it to convert frames")
    order = manifest.input.colour_order or "BGR"

    def convert(image: np.ndarray) -> np.ndarray:
        return to_model_input(image, size, order, crop=True, resize_shorter=manifest.input.resize_shorter)

    loaded: dict[str, Feed] = {}
    feeds = []
    for i in range(cameras):
        text = sources[i % len(sources)]
        spec = parse_source(text)
        if spec.kind in ("file", "images"):
            if text not in loaded:
                stream = open_stream(spec)
                frames: list[np.ndarray] = []
                try:
                    while len(frames) < max_frames:
                        got = stream.read()
                        if got is None:
                            break
                        frames.append(convert(got.image))
                finally:
                    stream.close()
                if not frames:
                    raise PipelineError(f"--source {spec.name} gave no frames")
                loaded[text] = Feed(spec.name, np.stack(frames), None)
            base = loaded[text]
            feeds.append(Feed(f"camera {i} ({base.name})", base.frames, None, (i // len(sources)) * 7))
        else:
            stream = open_stream(spec)
            first = stream.read(timeout=10.0)
            if first is None:
                stream.close()
                raise PipelineError(f"--source {spec.name} gave no frame within 10 s")
            feeds.append(Feed(f"camera {i} ({spec.name})", convert(first.image)[None], None, live=stream,
                              convert=convert))
    return feeds
