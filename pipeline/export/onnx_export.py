"""Export each stage of a multi-exit model to its own ONNX graph, checked and simplified.

Stage k's graph reads the tensors stage k-1 writes, under the names of :mod:`pipeline.names`, so a
runtime chains the graphs by name. Every input and output has a dynamic batch axis ``N``.
Preprocessing is stage 1's first layer (uint8 frame in), so it is part of stage 1's graph and the
app, the calibration and the accelerator share that one definition of it.

The last stage exports only its logits: nothing reads its carried maps.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pipeline import names
from pipeline.errors import PipelineError
from pipeline.manifest import TensorSpec

if TYPE_CHECKING:
    from pipeline.models.msdnet import MSDNet

OPSET = 17
BATCH_AXIS = "N"


def stage_example_inputs(model: "MSDNet", batch: int = 1) -> list[tuple[Any, ...]]:
    """Each stage's inputs for a batch of black frames: stage 1 gets (N, H, W, 3) uint8, stage k the maps of k-1."""
    import torch

    p = model.cfg.preprocess
    carried: tuple[Any, ...] = (torch.zeros(batch, p.height, p.width, 3, dtype=torch.uint8),)
    inputs = []
    with torch.no_grad():
        for stage in model.stages:
            inputs.append(carried)
            carried = tuple(stage(*carried)[1:])  # per-scale maps (N, C_s, H_s, W_s), finest first
    return inputs


def simplify_onnx(model: Any, what: str = "graph") -> Any:
    """onnx-simplifier with its numerical self-check; a failed check is an error, not a warning."""
    import onnxsim

    # The self-check runs batch 1; onnxsim prints its progress, which the build's log does not need.
    shapes = {i.name: [1 if d.dim_param else d.dim_value for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            simplified, ok = onnxsim.simplify(model, check_n=1, test_input_shapes=shapes)
    except Exception as exc:  # onnxsim raises plain RuntimeErrors from its C++ core
        raise PipelineError(f"onnx-simplifier failed on {what}: {type(exc).__name__}: {str(exc)[:300]}") from exc
    if not ok:
        raise PipelineError(f"onnx-simplifier changed the outputs of {what}; export without it is not supported")
    return simplified


def onnx_from_stage(stage: Any, inputs: Sequence[Any], index: int, path: str | Path, *, keep_maps: bool = True,
                    opset: int = OPSET, simplify: bool = True) -> Any:
    """Export ``stage`` (1-based ``index``) to ``path``; returns the saved ``onnx.ModelProto``.

    ``inputs`` are example tensors for the stage (shapes only matter); ``keep_maps=False`` drops the
    carried maps from the outputs (the last stage).
    """
    import onnx
    import torch

    n_maps = len(stage(*inputs)) - 1 if keep_maps else 0

    class _Export(torch.nn.Module):  # the stage with a fixed number of outputs
        def __init__(self) -> None:
            super().__init__()
            self.stage = stage

        def forward(self, *maps: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(self.stage(*maps)[: 1 + n_maps])

    in_names = names.stage_input_names(index, len(inputs))
    out_names = names.stage_output_names(index, n_maps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announces its retirement
        torch.onnx.export(_Export().eval(), tuple(inputs), str(path), dynamo=False, opset_version=opset,
                          input_names=in_names, output_names=out_names, do_constant_folding=True,
                          dynamic_axes={n: {0: BATCH_AXIS} for n in in_names + out_names})
    model = onnx.load(str(path))
    what = f"stage {index} ({path.name})"
    try:
        onnx.checker.check_model(model, full_check=True)
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise PipelineError(f"the exported ONNX graph of {what} is invalid: {exc}") from exc
    if simplify:
        model = simplify_onnx(model, what)
    onnx.save(model, str(path))
    return model


def onnx_from_model(model: "MSDNet", folder: str | Path, *, simplify: bool = True) -> list[Path]:
    """Export every stage of ``model`` as ``folder/stage<k>.fp32.onnx``; returns the paths in stage order."""
    folder = Path(folder)
    examples = stage_example_inputs(model)
    paths = []
    for k, (stage, inputs) in enumerate(zip(model.stages, examples), start=1):
        path = folder / names.artifact_filename(k, "fp32")
        onnx_from_stage(stage, inputs, k, path, keep_maps=k < len(model.stages), simplify=simplify)
        paths.append(path)
    return paths


def tensor_specs(path: str | Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The (inputs, outputs) of an ONNX graph as manifest TensorSpecs; symbolic axes stay names ("N")."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph

    def spec(vi: Any) -> TensorSpec:
        t = vi.type.tensor_type
        shape: list[int | str] = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        return TensorSpec(vi.name, shape, helper.tensor_dtype_to_np_dtype(t.elem_type).name)

    inits = {i.name for i in graph.initializer}
    return [spec(v) for v in graph.input if v.name not in inits], [spec(v) for v in graph.output]
