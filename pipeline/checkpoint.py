"""Checkpoints that carry everything a later step needs: weights, config, classes, preprocessing, split.

A checkpoint is a plain dict of tensors and Python literals, so ``torch.load(weights_only=True)``
reads it and nothing in it can run code. Writes go to a temporary file renamed into place. A resumable
checkpoint is a pair (the checkpoint records its resume state's sha256); while a new pair is written the
old state is kept aside, so a process killed between the two writes leaves a pair that still resumes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.files import atomic_write


FORMAT = "anytime-multi-exit/1"
REQUIRED = (("model", str, "the registered model's name"), ("config", dict, "the model's config"),
            ("classes", list, "the class names"), ("split", dict, "how the validation split was drawn"),
            ("state_dict", dict, "the weights"))


def save_checkpoint(path: str | Path, model: Any, model_name: str, classes: list[str], split: dict,
                    train_state: dict | None = None, origin: dict | None = None) -> None:
    """Atomically write ``model`` (a model of the registry or a factory: ``cfg`` and weights) with its metadata; ``train_state`` makes it resumable,
    ``origin`` records where converted weights came from."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": model_name,
        "config": model.cfg.to_dict(),
        "classes": list(classes),
        "preprocess": model.cfg.preprocess.to_dict(),
        "split": dict(split),  # how the validation split was drawn: {"seed", "size", "source"}
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    if train_state is not None:
        payload["train_state"] = _split_off_resume_state(path, train_state)
    if origin is not None:
        payload["origin"] = dict(origin)
    atomic_write(path, lambda f: torch.save(payload, f))
    previous_state_path(path).unlink(missing_ok=True)  # the new pair is whole


# What only a resumed run reads (raw weights beside an average, the optimiser's momentum): kept in a
# file of its own beside the checkpoint, so neither file holds three copies of the weights.
RESUME_KEYS = ("raw_state_dict", "optimizer")


def resume_state_path(path: Path) -> Path:
    """``models/x.pt`` -> ``models/x.state.pt``."""
    return path.with_name(f"{path.stem}.state{path.suffix}")


def previous_state_path(path: Path) -> Path:
    """``models/x.pt`` -> ``models/x.state.previous.pt``: the resume state of the pair being replaced."""
    return path.with_name(f"{path.stem}.state.previous{path.suffix}")


def _split_off_resume_state(path: Path, train_state: dict) -> dict:
    """Write the resume-only part of ``train_state`` beside ``path`` (before the checkpoint, which
    records its sha256), and return the rest."""
    import torch

    from pipeline.files import sha256_file

    side = {k: train_state[k] for k in RESUME_KEYS if k in train_state}
    if not side:
        return train_state
    state_path = resume_state_path(path)
    if state_path.is_file() and path.is_file():  # the checkpoint on disk names this state until it is replaced
        os.replace(state_path, previous_state_path(path))
    atomic_write(state_path, lambda f: torch.save(side, f))
    rest = {k: v for k, v in train_state.items() if k not in side}
    rest["resume_file"] = {"name": state_path.name, "sha256": sha256_file(state_path)}
    return rest


def resume_state_matches(path: Path) -> bool:
    """Whether the resume state beside the checkpoint ``path`` is the one it was saved with (its own file,
    not one kept aside by an interrupted save); the checkpoint is checked as :func:`read_checkpoint` does."""
    import torch

    from pipeline.files import sha256_file

    read_checkpoint(path)
    ref = (torch.load(path, map_location="cpu", weights_only=True).get("train_state") or {}).get("resume_file")
    state = resume_state_path(path)
    return isinstance(ref, dict) and state.is_file() and sha256_file(state) == ref.get("sha256")


def _join_resume_state(path: Path, train_state: dict) -> dict:
    """``train_state`` with the resume-only part read back from beside ``path``, checked by its sha256.

    A finished run needs no resume state: its checkpoint stands alone when the side file is gone.
    """
    import torch

    from pipeline.files import sha256_file

    ref = train_state.get("resume_file")
    if not isinstance(ref, dict):
        return train_state
    finished = isinstance(train_state.get("epoch"), int) and train_state["epoch"] >= int(train_state.get("epochs") or 0)
    state_path = path.with_name(str(ref.get("name")))
    if finished and not state_path.exists():
        return {k: v for k, v in train_state.items() if k != "resume_file"}
    # A process stopped between the two writes of a save left this checkpoint's state aside.
    matching = [p for p in (state_path, previous_state_path(path)) if p.is_file() and sha256_file(p) == ref.get("sha256")]
    if not matching:
        raise PipelineError(f"checkpoint {path} resumes from {state_path}, which is missing or is not the file it "
                            "was saved with; restore both files together (or train from scratch)")
    if matching[0] != state_path:  # make the pair whole again, so that the next save keeps the right state aside
        os.replace(matching[0], state_path)
    try:
        side = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise PipelineError(f"{state_path} could not be read ({type(exc).__name__}); restore it") from None
    return {**{k: v for k, v in train_state.items() if k != "resume_file"}, **side}


def read_checkpoint(path: str | Path, resume: bool = False) -> dict:
    """Load and check a checkpoint's structure; a missing, corrupt or foreign file raises PipelineError.

    ``resume``: also read the resume-only state kept beside it (raw weights, optimiser), which only a
    resumed run needs; without it a checkpoint is read alone, so a copy of a deployable one works anywhere.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"checkpoint {path} does not exist; train one with `make train` or pass --checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise PipelineError(f"checkpoint {path} could not be read ({type(exc).__name__}: {str(exc)[:200]}); "
                            "it is corrupt or not a checkpoint of this project: retrain or restore it") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        if isinstance(ckpt, dict) and ("arch" in ckpt or "best_prec1" in ckpt or "format" not in ckpt):
            raise PipelineError(f"checkpoint {path} is not in this project's format (it records no {FORMAT!r}); "
                                "a checkpoint of the reference MSDNet code converts with `anytime convert "
                                f"--checkpoint {path} --config cifar10 --out models/converted.pt` (docs/own-model.md)")
        raise PipelineError(f"checkpoint {path} has format {found!r}, expected {FORMAT!r}; "
                            "it was not written by `anytime train`")
    for key, kind, what in REQUIRED:
        if not isinstance(ckpt.get(key), kind):
            found = "it lacks it" if key not in ckpt else f"found {type(ckpt[key]).__name__}"
            raise PipelineError(f"checkpoint {path} should record {what} under {key!r} ({found}); it is incomplete "
                                "or damaged: retrain it or restore it")
    if isinstance(ckpt.get("train_state"), dict):
        state = ckpt["train_state"]
        ckpt["train_state"] = _join_resume_state(path, state) if resume else \
            {k: v for k, v in state.items() if k != "resume_file"}
    return ckpt
