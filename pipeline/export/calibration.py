"""Calibration inputs for INT8: per stage, what that stage reads when the model runs on N training images.

The images are drawn with a fixed seed from the training split *minus* the validation split (the
one recorded in the checkpoint), so neither the validation nor the test split ever informs the
quantization. Stage 1 is calibrated on the frames; stage k on the maps that the FP32 graphs of
stages 1..k-1 produce for them: what it will see at run time.

Computing those maps takes a forward pass per stage, so they are cached as one ``.npz`` under
``calib/``, keyed by a hash of (checkpoint sha256, the chosen images, N, seed), and reused; the
three most recent sets are kept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.errors import PipelineError
from pipeline.files import atomic_write, remove_dead_temps

CACHE_VERSION = 1
DEFAULT_IMAGES = 512
BATCH = 32  # images per calibration batch (get_next)
KEEP = 3  # calibration sets kept in the cache folder


def calibration_indices(labels: np.ndarray, split: dict, n: int, seed: int = 0) -> np.ndarray:
    """Indices (sorted, int64) of ``n`` training images outside the validation split ``split`` ({seed, size})."""
    from pipeline.data import validation_split
    from pipeline.data.splits import check_split_fits

    check_split_fits(split, len(labels), "the data")
    train_idx, _ = validation_split(labels, size=int(split["size"]), seed=int(split["seed"]))
    if n < 1:
        raise PipelineError(f"the number of calibration images must be at least 1, got {n}")
    if len(train_idx) < n:
        raise PipelineError(f"{n} calibration images requested, but the training split outside the validation "
                            f"split has only {len(train_idx)}; pass a smaller --calib-images or more data")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train_idx, size=n, replace=False)).astype(np.int64)


def calibration_key(checkpoint_sha256: str, frames: np.ndarray, seed: int) -> str:
    """Hash of what the cached tensors depend on: the weights, the exact images (hence N), the seed."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": CACHE_VERSION, "checkpoint": checkpoint_sha256, "n": int(len(frames)),
                         "seed": int(seed), "shape": list(frames.shape)}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(frames).tobytes())
    return h.hexdigest()


def _run_stage(path: str | Path, feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Run one FP32 stage graph over the whole set in batches; returns its carried maps (N, ...) by name."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()][1:]  # outputs[0] is the exit's logits
    n = len(next(iter(feeds.values())))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in out_names}
    for i in range(0, n, batch):
        outs = sess.run(out_names, {k: v[i:i + batch] for k, v in feeds.items()})
        for name, arr in zip(out_names, outs):
            parts[name].append(arr)
    return {name: np.concatenate(arrs) for name, arrs in parts.items()}


def calibration_inputs(fp32_paths: Sequence[str | Path], frames: np.ndarray, cache_dir: str | Path, key: str,
                       batch: int = BATCH) -> tuple[list[dict[str, np.ndarray]], Path, bool]:
    """Per stage, its calibration feeds ``{input name: (N, ...)}``; from the cache when present.

    Returns (feeds per stage, cache file, whether the cache was reused). ``frames`` is (N, H, W, 3)
    uint8 in the model's colour order; ``fp32_paths`` are the FP32 stage graphs in order.
    """
    from pipeline import names

    cache = Path(cache_dir) / f"calib-{key[:24]}.npz"
    k_stages = len(fp32_paths)
    if cache.parent.is_dir():
        remove_dead_temps(cache.parent)  # caches a killed build left half-written: a few hundred MB each
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    stages: list[dict[str, np.ndarray]] = [{} for _ in range(k_stages)]
                    for entry in z.files:
                        if entry != "key":
                            k, _, name = entry.partition(".")
                            stages[int(k[1:]) - 1][name] = z[entry]
                    if all(stages):
                        return stages, cache, True
        except (OSError, ValueError, KeyError, IndexError):
            pass  # unreadable or foreign cache: recompute and overwrite
    stages = [{names.FRAME: np.ascontiguousarray(frames)}]
    for k in range(1, k_stages):
        stages.append(_run_stage(fp32_paths[k - 1], stages[k - 1], batch))
    cache.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"s{k}.{name}": arr for k, feeds in enumerate(stages, start=1) for name, arr in feeds.items()}
    fields: dict[str, Any] = {"key": np.array(key), **arrays}  # Any: numpy's stubs type savez's keywords narrowly
    atomic_write(cache, lambda f: np.savez(f, **fields))
    prune_cache(cache.parent)
    return stages, cache, False


def prune_cache(cache_dir: str | Path, keep: int = KEEP) -> None:
    """Keep the ``keep`` newest calibration sets (with their range files); each one is a few hundred MB."""
    sets = sorted(Path(cache_dir).glob("calib-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sets[keep:]:
        for path in [old, *old.parent.glob(f"{old.stem}.*.json")]:
            path.unlink(missing_ok=True)


class CalibrationReader:
    """ONNX Runtime's calibration-reader protocol over one stage's inputs: ``get_next()`` -> feed dict or None.

    ``len()`` counts batches and ``set_range`` restricts to a range of them, so the calibrator can
    collect statistics a few batches at a time instead of holding every intermediate tensor.
    """

    def __init__(self, feeds: dict[str, np.ndarray], batch: int = BATCH) -> None:
        self.feeds = feeds
        self.batch = batch
        self.n = len(next(iter(feeds.values())))
        self.start, self.end = 0, len(self)
        self.pos = 0

    def __len__(self) -> int:
        return -(-self.n // self.batch)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, min(end_index, len(self))
        self.pos = start_index

    def rewind(self) -> None:
        self.pos = self.start

    def get_next(self) -> dict[str, Any] | None:
        if self.pos >= self.end:
            return None
        i = self.pos * self.batch
        self.pos += 1
        return {name: arr[i:i + self.batch] for name, arr in self.feeds.items()}
