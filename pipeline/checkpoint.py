"""Checkpoints that carry everything a later step needs: weights, config, classes, preprocessing, split.

A checkpoint is a plain dict of tensors and Python literals, so ``torch.load(weights_only=True)``
reads it and nothing in it can run code. Writes go to a temporary file renamed into place. A resumable
checkpoint is a pair (the checkpoint records the sha256 of each file of its resume state); while a new pair is
written the old state is kept aside, so a process killed between the writes leaves a pair that still resumes.
"""

from __future__ import annotations

import contextlib
import os
import re
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
    for old in state_files_on_disk(path, previous=True):  # the new pair is whole
        old.unlink(missing_ok=True)


# What only a resumed run reads (raw weights beside an average, the optimiser's momentum): kept in files of
# their own beside the checkpoint, so neither holds three copies of the weights. The state is cut into
# parts of at most STATE_PART_BYTES, each a file, so that every file of a run fits in a commit.
RESUME_KEYS = ("raw_state_dict", "optimizer")
STATE_PART_BYTES = 15_000_000


def resume_state_path(path: Path, part: int = 1, previous: bool = False) -> Path:
    """``models/x.pt`` -> ``models/x.state.pt`` (part 1), ``models/x.state.part2.pt`` (part 2, ...); ``previous``:
    ``models/x.state.previous.pt`` (``...previous.part2.pt``), that part of the state of the pair being replaced."""
    aside = ".previous" if previous else ""
    return path.with_name(f"{path.stem}.state{aside}{f'.part{part}' if part > 1 else ''}{path.suffix}")


_STATE_NAME = re.compile(r"(.+?)\.state(\.previous)?(?:\.part([2-9]|[1-9][0-9]+))?(\.[^.]+)")


def state_file_of(name: str) -> tuple[str, bool, int] | None:
    """For a file ``name`` of a resume state: (its checkpoint's name, kept aside?, part number); else None.
    ``x.state.pt`` -> ("x.pt", False, 1), ``x.state.previous.part2.pt`` -> ("x.pt", True, 2)."""
    m = _STATE_NAME.fullmatch(name)
    return (m.group(1) + m.group(4), bool(m.group(2)), int(m.group(3) or 1)) if m else None


def state_part_of(path: Path, name: str) -> tuple[bool, int] | None:
    """For a file ``name`` beside the checkpoint ``path``: (kept aside?, part number) when it is a file of the
    checkpoint's resume state, else None."""
    found = state_file_of(name)
    return found[1:] if found and found[0] == path.name else None


def check_checkpoint_output(out: Path, option: str, inputs: list[tuple[str, Path | None]]) -> None:
    """``check_output`` for a checkpoint, and no input named as a file of its resume state: saving the
    checkpoint replaces those files, or removes them."""
    from pipeline.files import check_output

    check_output(out, option, inputs)
    for role, path in inputs:
        if path is not None and os.path.realpath(path.parent) == os.path.realpath(out.parent) \
                and state_part_of(out, path.name) is not None:
            raise PipelineError(f"{role} {path} is named as a file of {option} {out}'s resume state, which saving "
                                f"{option} replaces or removes; rename it or choose another {option}")


def state_files_on_disk(path: Path, previous: bool | None = None) -> list[Path]:
    """Every file of a resume state of the checkpoint ``path`` in its folder, in part order (``previous``:
    only those kept aside, or only those in place; None: both)."""
    return [f for _, f in _numbered_state_files(path, previous)]


def _numbered_state_files(path: Path, previous: bool | None) -> list[tuple[int, Path]]:
    """:func:`state_files_on_disk` with each file's part number."""
    found = []
    for f in path.parent.iterdir() if path.parent.is_dir() else ():
        part = state_part_of(path, f.name)
        if part and (previous is None or part[0] == previous):
            found.append((part, f))
    return [(number, f) for (_, number), f in sorted(found)]


def _parts(path: Path, train_state: Any) -> list[dict]:
    """The resume state's files the checkpoint ``path`` records, ``[{"name", "sha256"}, ...]`` (one file in older
    runs' ``resume_file``); none when it records no resume state, an error when the record is damaged. Part N
    is read from :func:`resume_state_path` of ``path`` (the name is a record), so a run renamed with its
    files still resumes."""
    if not isinstance(train_state, dict) or ("resume_files" not in train_state and "resume_file" not in train_state):
        return []
    refs = train_state.get("resume_files", [train_state.get("resume_file")])
    if not (isinstance(refs, list) and refs and all(isinstance(r, dict) and isinstance(r.get("sha256"), str)
                                                     for r in refs)):
        raise PipelineError(f"checkpoint {path} records its resume state's files in a form this version cannot "
                            "read; it is damaged: restore it (or train from scratch)")
    return refs


def _split_off_resume_state(path: Path, train_state: dict) -> dict:
    """Write the resume-only part of ``train_state`` beside ``path`` in parts (before the checkpoint, which
    records each part's sha256), and return the rest. The parts the checkpoint on disk names are kept aside
    until the new checkpoint is in place."""
    import hashlib
    import io

    import torch

    side = {k: train_state[k] for k in RESUME_KEYS if k in train_state}
    if not side:
        return train_state
    torch.save(side, buffer := io.BytesIO())  # in memory: cut into files below
    data = buffer.getvalue()
    count = max(1, -(-len(data) // STATE_PART_BYTES))
    size = -(-len(data) // count)
    for number, old in _numbered_state_files(path, previous=False):
        if path.is_file():  # the checkpoint on disk names this state until it is replaced
            os.replace(old, resume_state_path(path, number, previous=True))
        else:
            old.unlink()
    parts = []
    for i in range(count):
        chunk, dest = data[i * size:(i + 1) * size], resume_state_path(path, i + 1)
        atomic_write(dest, lambda f: f.write(chunk))
        parts.append({"name": dest.name, "sha256": hashlib.sha256(chunk).hexdigest()})
    rest = {k: v for k, v in train_state.items() if k not in side}
    rest["resume_files"] = parts
    # What a version that read one file finds: that file, or (in parts) a digest no part has, so it refuses
    # the run rather than resume it without its optimiser.
    rest["resume_file"] = parts[0] if count == 1 else {"name": parts[0]["name"],
                                                       "sha256": hashlib.sha256(data).hexdigest()}
    return rest


def resume_state_files(path: Path) -> list[Path]:
    """The files of the resume state the checkpoint ``path`` was saved with, in their places (existing or not);
    none for a checkpoint that records no resume state. The checkpoint is checked as :func:`read_checkpoint` does."""
    state = read_checkpoint(path, resume=None).get("train_state")
    return [resume_state_path(path, number) for number in range(1, len(_parts(path, state)) + 1)]


def resume_state_matches(path: Path) -> bool:
    """Whether the resume state beside the checkpoint ``path`` is the one it was saved with (its own files,
    not ones kept aside by an interrupted save); the checkpoint is checked as :func:`read_checkpoint` does."""
    from pipeline.files import sha256_file

    parts = _parts(path, read_checkpoint(path, resume=None).get("train_state"))
    for number, ref in enumerate(parts, 1):
        place = resume_state_path(path, number)
        if not place.is_file() or sha256_file(place) != ref.get("sha256"):
            return False
    return bool(parts)


def _join_resume_state(path: Path, train_state: dict) -> dict:
    """``train_state`` with the resume-only part read back from beside ``path``, each file checked by its sha256.

    A finished run needs no resume state: its checkpoint stands alone when the side files are gone.
    """
    import hashlib
    import io

    import torch

    parts = _parts(path, train_state)
    bare = {k: v for k, v in train_state.items() if k not in ("resume_file", "resume_files")}
    if not parts:
        return bare
    finished = isinstance(train_state.get("epoch"), int) and train_state["epoch"] >= int(train_state.get("epochs") or 0)
    places = [resume_state_path(path, number) for number in range(1, len(parts) + 1)]
    if finished and not any(p.exists() for p in places):
        return bare
    chunks = []
    for number, (ref, place) in enumerate(zip(parts, places), 1):
        # A process stopped between the writes of a save left this checkpoint's state aside; another rank of
        # the run may be putting it back meanwhile, hence the second look in place.
        for candidate in (place, resume_state_path(path, number, previous=True), place):
            try:
                chunk = candidate.read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                continue
            if hashlib.sha256(chunk).hexdigest() == ref["sha256"]:
                break
        else:
            raise PipelineError(f"checkpoint {path} resumes from {place}, which is missing or is not the file it "
                                "was saved with; restore the checkpoint and its state together (or train from scratch)")
        if candidate != place:  # make the pair whole again, so that the next save keeps the right state aside
            with contextlib.suppress(FileNotFoundError):
                os.replace(candidate, place)
        chunks.append(chunk)
    try:
        side = torch.load(io.BytesIO(b"".join(chunks)), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise PipelineError(f"{places[0]} could not be read ({type(exc).__name__}); restore it") from None
    return {**bare, **side}


def load_failure(exc: Exception) -> tuple[bool, str]:
    """Why ``torch.load(weights_only=True)`` failed, shortly: (the file names Python objects, which loading
    would run; the cause). torch's own text also advises loading without ``weights_only``, which runs
    whatever the file holds: it is not passed on."""
    text = str(exc)
    named = re.search(r"Unsupported global: GLOBAL (\S+)|unsupported GLOBAL (\S+)", text)
    if named:
        return True, f"it names the Python object {named.group(1) or named.group(2)}"
    if re.search(r"is blocked|unrecognized function|Can only create new object", text):
        return True, "it builds Python objects"
    cause = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if cause:
        return False, f"{type(exc).__name__}: {cause.group(1)[:160]}"
    if text.startswith("Weights only load failed"):  # torch's wrapper, whose advice is not passed on
        return False, f"{type(exc).__name__}: not a file of tensors and numbers"
    return False, f"{type(exc).__name__}: {(text.strip().splitlines() or [''])[0][:160]}"


def read_checkpoint(path: str | Path, resume: bool | None = False) -> dict:
    """Load and check a checkpoint's structure; a missing, corrupt or foreign file raises PipelineError.

    ``resume``: also read the resume-only state kept beside it (raw weights, optimiser), which only a
    resumed run needs; without it a checkpoint is read alone, so a copy of a deployable one works anywhere.
    None: the training state as saved, with the record of its resume state's files.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"checkpoint {path} does not exist; train one with `make train` or pass --checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise PipelineError(f"checkpoint {path} could not be read ({load_failure(exc)[1]}); "
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
    if isinstance(ckpt.get("train_state"), dict) and resume is not None:
        state = ckpt["train_state"]
        ckpt["train_state"] = _join_resume_state(path, state) if resume else \
            {k: v for k, v in state.items() if k not in ("resume_file", "resume_files")}
    return ckpt
