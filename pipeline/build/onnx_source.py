"""Stage graphs made elsewhere, as this pipeline's FP32 artifacts: checked, renamed, stage 1 fed the frame.

Each graph is checked against the spec (:mod:`pipeline.build.onnx_spec`): the named logits and
carried outputs exist, every carried tensor is an input of the next graph and every input of a
later graph is carried, static shapes agree, and the chain, run on two random frames, gives
logits of shape (N, classes) at every exit. Then tensors take the pipeline's names
(:mod:`pipeline.names`), the batch axis becomes dynamic, and stage 1 gets the camera's uint8 BGR
frame in front of what it expected (cast, layout, channel order, normalisation), so from here the
artifacts go the way an exported model's go: FP16, INT8 calibrated on the user's images, engines.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import names
from pipeline.build.artifacts import log
from pipeline.build.onnx_spec import OnnxSpec
from pipeline.errors import PipelineError
from pipeline.manifest import StageSpec


def _graph_inputs(graph: Any) -> list[Any]:
    inits = {i.name for i in graph.initializer}
    return [i for i in graph.input if i.name not in inits]


def _dims(vi: Any) -> list[int | str]:
    return [d.dim_param or (int(d.dim_value) if d.HasField("dim_value") else "?") for d in vi.type.tensor_type.shape.dim]


def _rename(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def _dynamic_batch(graph: Any) -> None:
    for vi in list(_graph_inputs(graph)) + list(graph.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].dim_param = "N"


def _frame_input(model: Any, spec: OnnxSpec) -> None:
    """Replace stage 1's input with the (N, H, W, 3) uint8 BGR frame, converted in front to what it expected."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    (x,) = _graph_inputs(graph)
    if x.name == names.FRAME:  # the name the new input takes
        _rename(graph, x.name, "frame_image")
    elem = x.type.tensor_type.elem_type
    nodes, t, pos = [], names.FRAME, 3  # the tensor so far and its channel axis
    if elem != TensorProto.UINT8:
        nodes.append(helper.make_node("Cast", [t], ["frame_float"], to=elem, name="frame_cast"))
        t = "frame_float"
    if spec.layout == "NCHW":
        nodes.append(helper.make_node("Transpose", [t], ["frame_nchw"], perm=[0, 3, 1, 2], name="frame_layout"))
        t, pos = "frame_nchw", 1
    consts = []
    if spec.colour_order == "RGB":  # the frame is BGR
        consts.append(numpy_helper.from_array(np.array([2, 1, 0], dtype=np.int64), "frame_rgb_index"))
        nodes.append(helper.make_node("Gather", [t, "frame_rgb_index"], ["frame_rgb"], axis=pos, name="frame_order"))
        t = "frame_rgb"
    if spec.mean is not None and spec.std is not None:
        if elem != TensorProto.FLOAT:
            raise PipelineError(f"spec {spec.path}: stage 1's graph takes {TensorProto.DataType.Name(elem)}, which "
                                "the pipeline cannot normalise into; give a float32 input or normalisation 'inside'")
        shape = [1, 3, 1, 1] if pos == 1 else [1, 1, 1, 3]
        std = np.array(spec.std, dtype=np.float32)
        consts.append(numpy_helper.from_array((1.0 / (255.0 * std)).reshape(shape), "frame_scale"))
        consts.append(numpy_helper.from_array((-np.array(spec.mean, dtype=np.float32) / std).reshape(shape),
                                              "frame_shift"))
        nodes.append(helper.make_node("Mul", [t, "frame_scale"], ["frame_scaled"], name="frame_scale_mul"))
        nodes.append(helper.make_node("Add", ["frame_scaled", "frame_shift"], [x.name], name="frame_shift_add"))
    else:
        nodes.append(helper.make_node("Identity", [t], [x.name], name="frame_identity"))
    frame = helper.make_tensor_value_info(names.FRAME, TensorProto.UINT8, ["N", spec.height, spec.width, 3])
    graph.input.remove(x)
    graph.input.insert(0, frame)
    graph.initializer.extend(consts)
    for i, node in enumerate(nodes):
        graph.node.insert(i, node)


def adapt_graphs(spec: OnnxSpec) -> list[Any]:
    """The spec's graphs as this pipeline's stage graphs (in memory), every cross-graph fact checked."""
    import onnx

    models, previous = [], None
    for k, stage in enumerate(spec.stages, start=1):
        where = f"stage {k}'s graph {stage.graph.name}"
        try:
            model = onnx.load(str(stage.graph))
            onnx.checker.check_model(model)
        except Exception as exc:  # protobuf errors, checker errors
            raise PipelineError(f"{where} is not a valid ONNX graph ({type(exc).__name__}: {exc}); export it again")
        graph = model.graph
        outputs = {o.name: o for o in graph.output}
        for name in (stage.logits, *stage.carried):
            if name not in outputs:
                raise PipelineError(f"spec {spec.path} names {name!r} for stage {k}, but {where} has no such "
                                    f"output; its outputs: {', '.join(outputs) or 'none'}")
        inputs = {i.name: i for i in _graph_inputs(graph)}
        if previous is None:
            if len(inputs) != 1:
                raise PipelineError(f"{where} has {len(inputs)} inputs ({', '.join(inputs)}); stage 1 takes the "
                                    "image alone")
            (x,) = inputs.values()
            dims, want = _dims(x), ([3, spec.height, spec.width] if spec.layout == "NCHW" else
                                    [spec.height, spec.width, 3])
            if len(dims) != 4 or any(isinstance(d, int) and d != e for d, e in zip(dims[1:], want)):
                raise PipelineError(f"{where} takes {x.name} {dims}, the spec says {spec.layout} {want} after the "
                                    "batch; fix input height, width or layout in the spec")
        else:
            prev_stage, prev_out = previous
            unused = [c for c in prev_stage.carried if c not in inputs]
            if unused:
                raise PipelineError(f"stage {k - 1} carries {unused[0]!r}, but no input of {where} takes it "
                                    f"(its inputs: {', '.join(inputs)}); fix carried in the spec")
            fed = [i for i in inputs if i not in prev_stage.carried]
            if fed:
                raise PipelineError(f"{where} takes {fed[0]!r}, which stage {k - 1} does not carry (carried: "
                                    f"{', '.join(prev_stage.carried)}); add it to stage {k - 1}'s carried")
            for j, c in enumerate(prev_stage.carried):
                a, b = prev_out[c], _dims(inputs[c])
                if len(a) != len(b) or any(isinstance(p, int) and isinstance(q, int) and p != q
                                           for p, q in zip(a[1:], b[1:])):
                    raise PipelineError(f"stage {k - 1} carries {c!r} {a}, {where} takes it as {b}: the shapes "
                                        "do not chain")
                _rename(graph, c, names.feature_name(k - 1, j))
        keep = [stage.logits, *stage.carried]
        for o in [o for o in graph.output if o.name not in keep]:
            graph.output.remove(o)  # outputs nobody reads
        order = {n: i for i, n in enumerate(keep)}
        outs = sorted(graph.output, key=lambda o: order[o.name])
        del graph.output[:]
        graph.output.extend(outs)
        previous = (stage, {o.name: _dims(o) for o in graph.output})  # as the user wrote them
        _rename(graph, stage.logits, names.logits_name(k))
        if k == 1:
            _frame_input(model, spec)
        _dynamic_batch(graph)
        models.append(model)
    for k, (model, stage) in enumerate(zip(models, spec.stages), start=1):
        for j, c in enumerate(stage.carried):
            _rename(model.graph, c, names.feature_name(k, j))
    return models


def check_chain(paths: list[Path], classes: int, batch: int = 2) -> None:
    """Run the adapted graphs on ``batch`` random frames, as the runtime chains them; logits (N, classes) each."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths]
    shape = [d if isinstance(d, int) else 0 for d in sessions[0].get_inputs()[0].shape]
    feeds: dict[str, np.ndarray] = {names.FRAME: np.random.default_rng(0).integers(
        0, 256, (batch, shape[1], shape[2], 3), dtype=np.uint8)}
    for k, sess in enumerate(sessions, start=1):
        try:
            outs = sess.run(None, feeds)
        except Exception as exc:  # ONNX Runtime's own errors: fixed batch sizes, broken graphs
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise PipelineError(f"stage {k}'s graph does not run on a batch of {batch} ({first}); export it with a "
                                "dynamic batch axis (dim 0) on every input and output") from None
        if outs[0].shape != (batch, classes):
            raise PipelineError(f"stage {k}'s logits have shape {outs[0].shape}, expected ({batch}, {classes}): "
                                f"one score per class of the spec's {classes}")
        feeds = dict(zip([o.name for o in sess.get_outputs()][1:], outs[1:]))


def graph_flops(path: Path) -> tuple[int, int]:
    """(FLOPs, parameters) of one frame through a graph: 2 per multiply-add of Conv, Gemm and MatMul."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    g = model.graph
    shapes = {vi.name: _dims(vi) for vi in list(g.value_info) + list(g.output) + list(g.input)}
    weights = {i.name: list(i.dims) for i in g.initializer}

    def elements(name: str) -> int:
        dims = shapes.get(name, [])[1:]
        return int(np.prod([d for d in dims if isinstance(d, int)])) if dims else 0

    flops = 0
    for n in g.node:
        w = weights.get(n.input[1]) if len(n.input) > 1 else None
        if n.op_type == "Conv" and w:
            flops += 2 * elements(n.output[0]) * int(np.prod(w[1:]))
        elif n.op_type in ("Gemm", "MatMul") and w:
            flops += 2 * int(np.prod(w))
    return flops, int(sum(np.prod(d) for d in weights.values()))


def fp32_from_spec(spec: OnnxSpec, tmp: Path) -> tuple[list[Path], list[StageSpec]]:
    """The spec's graphs, checked and adapted, as ``tmp/onnx/stage<k>.fp32.onnx``; returns paths and stage specs.

    Runs before any data is loaded, so a spec that does not fit its graphs fails first.
    """
    import onnx

    from pipeline.build.options import can_export
    from pipeline.export.onnx_export import simplify_onnx, tensor_specs

    t0 = time.time()
    fp32 = []
    for k, model in enumerate(adapt_graphs(spec), start=1):
        path = tmp / "onnx" / names.artifact_filename(k, "fp32")
        path.parent.mkdir(parents=True, exist_ok=True)
        model = onnx.shape_inference.infer_shapes(model)
        onnx.save(simplify_onnx(model, f"stage {k}") if can_export() else model, str(path))
        fp32.append(path)
    check_chain(fp32, len(spec.classes))
    stages, flops, params = [], 0, 0
    for k, path in enumerate(fp32, start=1):
        f, p = graph_flops(path)
        flops, params = flops + f, params + p
        stages.append(StageSpec(k, *tensor_specs(path), flops=flops, params=params))
    log(f"checked and adapted {len(fp32)} stage graphs of {spec.path} ({time.time() - t0:.1f} s)")
    return fp32, stages
