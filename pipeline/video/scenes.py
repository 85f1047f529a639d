"""Labelled test video from still images: each scene one image seen through a hand-held camera.

A clip is a sequence of scenes joined by hard cuts. In a scene the camera looks at one image,
enlarged so that the frame's centre square (H x H of an H x W frame) shows the image's
``32 / zoom`` pixels around a centre point. The camera moves the way a held camera does:

- segments of slow pan and zoom (the pose eased from one point to the next), of fast moves
  (a few frames, with motion blur along the move), and of static stretches (a camera put down:
  no shake, only noise); ``motion="continuous"`` keeps the camera panning, with no static stretch;
- hand shake: a smoothed random walk of about ``shake`` frame pixels on top of the pose;
- exposure flicker: a per-frame gain of about ``1 +- flicker``; sensor noise: Gaussian luma noise
  of ``noise`` grey levels.

Everything is drawn from one ``numpy`` generator seeded by ``seed``: the same images, spec and
seed give the same frames, bit for bit. Outside the image the picture continues mirrored, so the
frame has no border. With the app's ``--crop`` the model sees about the image as the data set has it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import PipelineError

MOTIONS = ("mixed", "continuous")


@dataclass(frozen=True)
class ClipSpec:
    """How many scenes, how long, how large and how the camera behaves."""

    scenes: int = 20
    min_frames: int = 30  # frames per scene, drawn uniformly in [min_frames, max_frames]
    max_frames: int = 60
    size: tuple[int, int] = (480, 640)  # (H, W) of a frame
    motion: str = "mixed"  # "mixed" (pans, fast moves, static stretches) or "continuous" (always panning)
    shake: float = 1.5  # hand shake, frame pixels (rms of the smoothed walk)
    noise: float = 2.5  # sensor noise, grey levels (sigma)
    flicker: float = 0.03  # exposure flicker, relative gain amplitude
    max_zoom: float = 1.2  # the view shows between 32 and 32 / max_zoom image pixels

    def __post_init__(self) -> None:
        if self.scenes < 1 or self.min_frames < 1 or self.max_frames < self.min_frames:
            raise PipelineError(f"a clip needs at least one scene of at least one frame, and max_frames >= min_frames;"
                                f" got {self.scenes} scenes of {self.min_frames}..{self.max_frames} frames")
        if self.motion not in MOTIONS:
            raise PipelineError(f"unknown camera motion {self.motion!r}; expected one of {', '.join(MOTIONS)}")
        if len(self.size) != 2 or min(self.size) < 8:
            raise PipelineError(f"frame size should be (H, W) of at least 8 pixels each; got {self.size}")
        if min(self.shake, self.noise, self.flicker) < 0 or self.max_zoom < 1:
            raise PipelineError("shake, noise and flicker should be 0 or more, and max_zoom at least 1")


@dataclass(frozen=True)
class Scene:
    """One scene of a clip: which image, from which frame, how many frames."""

    index: int  # 0-based scene number
    image: int  # index into the images the clip was drawn from
    label: int
    start: int  # first frame of the scene
    frames: int
    segments: tuple[str, ...] = field(default=())  # the camera's segments, in order: "pan", "fast", "static"


@dataclass(frozen=True)
class ClipPlan:
    """The scenes of a clip and every frame's label; :func:`render_frames` draws the frames."""

    spec: ClipSpec
    seed: int
    scenes: tuple[Scene, ...]

    @property
    def num_frames(self) -> int:
        return sum(s.frames for s in self.scenes)

    def frame_labels(self) -> np.ndarray:
        """(F,) int64 label of every frame."""
        return np.concatenate([np.full(s.frames, s.label, np.int64) for s in self.scenes])

    def frame_scenes(self) -> np.ndarray:
        """(F,) int64 scene number of every frame."""
        return np.concatenate([np.full(s.frames, s.index, np.int64) for s in self.scenes])

    def cuts(self) -> list[int]:
        """The first frame of every scene after the first: where the hard cuts are."""
        return [s.start for s in self.scenes[1:]]


def plan_clip(labels: np.ndarray, spec: ClipSpec, seed: int = 0) -> ClipPlan:
    """Draw the scenes (images without repeats while they last, lengths, camera segments) for ``labels`` (N,)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise PipelineError(f"expected (N,) labels of at least one image, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(labels)) for _ in range(-(-spec.scenes // len(labels)))])
    scenes, start = [], 0
    for i in range(spec.scenes):
        n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
        scenes.append(Scene(i, int(order[i]), int(labels[order[i]]), start, n, _segments(rng, n, spec.motion)))
        start += n
    return ClipPlan(spec, seed, tuple(scenes))


def _segments(rng: np.random.Generator, frames: int, motion: str) -> tuple[str, ...]:
    kinds, weights = (("pan", "fast", "static"), (0.55, 0.15, 0.30)) if motion == "mixed" else \
        (("pan", "fast"), (0.8, 0.2))
    out, left = [], frames
    while left > 0:
        kind = str(rng.choice(kinds, p=weights))
        n = min(left, int(rng.integers(3, 7)) if kind == "fast" else int(rng.integers(8, 21)))
        out.extend([kind] * n)
        left -= n
    return tuple(out)


def _pose(rng: np.random.Generator, spec: ClipSpec) -> np.ndarray:
    """(cx, cy, zoom): the view's centre in image pixels from the image centre, and its zoom."""
    zoom = float(rng.uniform(1.0, spec.max_zoom))
    reach = 16.0 - 16.0 / zoom + 1.0  # the view may slide a little past the image's edge (mirrored there)
    return np.array([rng.uniform(-reach, reach), rng.uniform(-reach, reach), zoom])


def _poses(rng: np.random.Generator, scene: Scene, spec: ClipSpec) -> np.ndarray:
    """(frames, 3) pose per frame: eased moves between random poses, still during static stretches."""
    poses = np.empty((scene.frames, 3))
    here = _pose(rng, spec)
    i, segs = 0, scene.segments
    while i < len(segs):
        j = i
        while j < len(segs) and segs[j] == segs[i]:
            j += 1
        kind, n = segs[i], j - i
        if kind == "static":
            poses[i:j] = here
        else:
            there = _pose(rng, spec)
            if kind == "pan":  # slow: at most about 4 image pixels over the segment
                there = here + np.clip(there - here, [-4, -4, -0.12], [4, 4, 0.12])
            t = np.arange(1, n + 1) / n
            ease = t * t * (3 - 2 * t)  # smoothstep: starts and stops gently
            poses[i:j] = here + ease[:, None] * (there - here)
            here = poses[j - 1].copy()
        i = j
    return poses


def render_frames(plan: ClipPlan, images: np.ndarray) -> Iterator[np.ndarray]:
    """Every frame of ``plan`` as (H, W, 3) uint8 BGR, in order; ``images`` (N, h, w, 3) uint8 BGR."""
    import cv2

    spec = plan.spec
    h_out, w_out = spec.size
    rng = np.random.default_rng([plan.seed, 1])  # the camera's randomness, apart from the plan's
    pool = _noise_pool(rng, spec)
    walk = np.zeros(2)
    for scene in plan.scenes:
        img = images[scene.image]
        ih, iw = img.shape[:2]
        poses = _poses(rng, scene, spec)
        phase = rng.uniform(0, 2 * math.pi)
        prev_xy: np.ndarray | None = None
        for f in range(scene.frames):
            cx, cy, zoom = poses[f]
            still = scene.segments[f] == "static"
            walk = 0.85 * walk + rng.normal(0.0, spec.shake * 0.53, 2)  # rms about ``shake``
            shake = np.zeros(2) if still else walk
            s = (iw / zoom) / h_out  # image pixels per frame pixel: the centre square spans the view
            # inverse map: frame pixel (u, v) -> image pixel (x, y)
            x0 = (iw - 1) / 2 + cx * iw / 32 - ((w_out - 1) / 2 + shake[0]) * s
            y0 = (ih - 1) / 2 + cy * ih / 32 - ((h_out - 1) / 2 + shake[1]) * s
            m = np.array([[s, 0.0, x0], [0.0, s, y0]])
            frame = cv2.warpAffine(img, m, (w_out, h_out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT_101)
            xy = np.array([x0, y0]) / s  # where the view is, in frame pixels
            if prev_xy is not None and scene.segments[f] == "fast":
                frame = _motion_blur(frame, xy - prev_xy)
            prev_xy = xy
            gain = 1.0 + spec.flicker * (0.6 * math.sin(phase + 0.9 * f) + 0.4 * float(rng.uniform(-1, 1)))
            field_, dy, dx = (int(v) for v in rng.integers(0, (len(pool), NOISE_MARGIN, NOISE_MARGIN)))
            noise = pool[field_, dy:dy + h_out, dx:dx + w_out]  # (H, W, 3) uint8, 128 + noise
            yield cv2.addWeighted(frame, gain, noise, 1.0, -128.0)  # saturated to uint8 in one pass


NOISE_MARGIN = 32  # noise fields are this much larger than a frame: each frame takes a random window


def _noise_pool(rng: np.random.Generator, spec: ClipSpec, fields: int = 6) -> np.ndarray:
    """(fields, H + margin, W + margin, 3) uint8 luma noise around 128: drawn once, windows of it per frame."""
    h, w = spec.size[0] + NOISE_MARGIN, spec.size[1] + NOISE_MARGIN
    luma = np.clip(128 + rng.standard_normal((fields, h, w), dtype=np.float32) * spec.noise, 0, 255)
    return np.repeat(luma.astype(np.uint8)[..., None], 3, axis=3)


def _motion_blur(frame: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Average ``frame`` along the move of ``step`` (frame pixels): a line kernel as long as the move."""
    import cv2

    length = int(min(31, round(float(np.hypot(*step)))))
    if length < 3:
        return frame
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = step / np.hypot(*step)
    for t in np.linspace(-c, c, 2 * length):
        kernel[int(round(c + t * dy)), int(round(c + t * dx))] = 1.0
    return cv2.filter2D(frame, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT_101)
