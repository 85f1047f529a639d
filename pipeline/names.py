"""Tensor and file names shared by export, engines and runtime: defined here once.

Stage k's graph reads the tensors that stage k-1 writes under the same names, so the runtime can
bind outputs to inputs by name.
"""

from __future__ import annotations

FRAME = "frame"  # stage 1's input: (N, H, W, 3) uint8 in the model's colour order

PRECISIONS = ("fp32", "fp16", "int8")


def logits_name(stage: int) -> str:
    """Exit ``stage``'s logits (N, classes), float32. Stages count from 1."""
    return f"logits_{stage}"


def feature_name(stage: int, position: int) -> str:
    """The ``position``-th map (finest first) that stage ``stage`` carries to the next stage."""
    return f"stage{stage}_map{position}"


def stage_input_names(stage: int, n_inputs: int) -> list[str]:
    return [FRAME] if stage == 1 else [feature_name(stage - 1, j) for j in range(n_inputs)]


def stage_output_names(stage: int, n_maps: int) -> list[str]:
    return [logits_name(stage)] + [feature_name(stage, j) for j in range(n_maps)]


def artifact_filename(stage: int, precision: str, flavour: str = "") -> str:
    """``stage1.fp32.onnx``; ``flavour`` marks a variant of a precision, e.g. ``stage1.int8.u8.onnx``."""
    return f"stage{stage}.{precision}{'.' + flavour if flavour else ''}.onnx"
