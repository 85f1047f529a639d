"""Rebuilding a model from a checkpoint: its config makes the network, the weights are checked against it.

Reading and writing checkpoint files is :mod:`pipeline.checkpoint`'s; this module is where a file becomes a
model, so it sits with the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.checkpoint import read_checkpoint
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.models.msdnet import MSDNet


def check_shapes(path: str | Path, wanted: dict, stored: dict) -> None:
    """Refuse weights whose shapes do not fit the model the config makes (``load_state_dict`` would raise a
    long ``size mismatch`` error for each), naming the first and how many differ."""
    bad = [(k, tuple(v.shape), tuple(getattr(stored[k], "shape", ()))) for k, v in wanted.items()
           if k in stored and tuple(getattr(stored[k], "shape", ())) != tuple(v.shape)]
    if bad:
        name, want, have = bad[0]
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise PipelineError(f"checkpoint {path}: weights do not fit its config: {name} is {list(have)} in the file "
                            f"but {list(want)} for the config{more}; the config was changed after training or the "
                            "file is damaged: retrain it or restore the config it was trained with")


# Factories inside this package (the teacher, RANet, the cascade of static networks): rebuilding them runs no code from outside it.
OWN_FACTORIES = ("pipeline.models.teacher:", "pipeline.models.ranet:", "pipeline.models.static_cascade:")


def load_model(path: str | Path, expect_model: str | None = None, expect_config: dict | None = None,
               resume: bool = False) -> tuple["MSDNet", dict]:
    """Rebuild the model from a checkpoint and load its weights; returns ``(model in eval mode, checkpoint)``.

    ``expect_model`` / ``expect_config`` reject a checkpoint of another model or configuration; ``resume``
    as in :func:`read_checkpoint`.
    """
    from pipeline.models import model_from_config

    ckpt = read_checkpoint(path, resume=resume)
    if expect_model is not None and ckpt["model"] != expect_model:
        raise PipelineError(f"checkpoint {path} holds model {ckpt['model']!r}, but {expect_model!r} was requested; "
                            "pass the matching --model or another checkpoint")
    if expect_config is not None:
        diff = {k: (ckpt["config"].get(k), v) for k, v in expect_config.items() if ckpt["config"].get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
            raise PipelineError(f"checkpoint {path} does not match the requested config ({detail}); "
                                "use another output path or the checkpoint's own config")
    factory = ckpt["config"].get("factory") if isinstance(ckpt.get("config"), dict) else None
    if factory and expect_model != factory and not str(factory).startswith(OWN_FACTORIES):
        raise PipelineError(f"checkpoint {path} holds a model made by --model-factory {factory}; rebuilding it imports "
                            f"and runs that code, so pass --model-factory {factory} to allow it")
    try:
        model = model_from_config(ckpt["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"checkpoint {path}: its config does not make a model ({type(exc).__name__}: "
                            f"{str(exc)[:160]}); the file is inconsistent: retrain it") from None
    outputs = getattr(getattr(model, "cfg", None), "num_classes", None)
    if isinstance(outputs, int) and len(ckpt.get("classes", [])) != outputs:
        raise PipelineError(f"checkpoint {path} names {len(ckpt.get('classes', []))} classes for {outputs} outputs; "
                            "the file is inconsistent: retrain it or restore its class list")
    check_shapes(path, model.state_dict(), ckpt["state_dict"])
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise PipelineError(f"checkpoint {path}: weights do not fit the config (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}); the file is inconsistent: retrain it")
    return model.eval(), ckpt
