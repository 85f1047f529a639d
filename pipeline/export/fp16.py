"""FP16 artifacts: float16 weights and arithmetic inside, float32 graph inputs and outputs.

Keeping float32 at the edges lets every precision share the runtime's buffers and lets an FP16
stage follow an FP32 one. The conversion is onnxconverter-common's, with one repair first: a tensor
that is both a graph output (a map carried to the next stage) and read inside the graph (by the
exit head) would have its internal readers wired to the float32 cast of the output, which ONNX
Runtime rejects ("Type parameter (T) ... bound to different types"). Splitting such a tensor with
an Identity node gives the internal readers and the graph output separate tensors: the readers
stay float16 and only the Identity's output is cast back to float32. The converter also leaves the
``to`` of the graph's own Cast nodes (uint8 frame -> float) at float32 while typing their outputs
float16; those are retargeted to float16.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

INNER_SUFFIX = "__inner"


def split_consumed_outputs(model: Any) -> int:
    """Give every graph output that is also read inside the graph its own Identity node; returns how many."""
    from onnx import helper

    graph = model.graph
    outputs = {o.name for o in graph.output}
    read = {name for node in graph.node for name in node.input}
    split = sorted(outputs & read)
    if not split:
        return 0
    renamed = {name: name + INNER_SUFFIX for name in split}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        for i, name in enumerate(node.output):
            if name in renamed:
                node.output[i] = renamed[name]
    for vi in graph.value_info:  # keep the shape information of the renamed tensors
        if vi.name in renamed:
            vi.name = renamed[vi.name]
    for name in split:
        graph.node.append(helper.make_node("Identity", [renamed[name]], [name], name=f"{name}_output"))
    return len(split)


def fp16_from_onnx(src: str | Path, dst: str | Path) -> Path:
    """Convert the FP32 graph at ``src`` into an FP16 graph with float32 I/O at ``dst``."""
    import onnx
    from onnxconverter_common import float16

    try:
        model = onnx.load(str(src))
    except Exception as exc:  # protobuf DecodeError, OSError
        raise PipelineError(f"{src} is not a readable ONNX graph ({type(exc).__name__}); export it again") from exc
    split_consumed_outputs(model)
    float_casts = {n.name for n in model.graph.node if n.op_type == "Cast"
                   and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in n.attribute)}
    try:
        with warnings.catch_warnings():  # "float32 number ... will be truncated": tiny weights, by design
            warnings.simplefilter("ignore", UserWarning)
            model = float16.convert_float_to_float16(model, keep_io_types=True)
        for node in model.graph.node:
            if node.op_type == "Cast" and node.name in float_casts:
                for a in node.attribute:
                    if a.name == "to":
                        a.i = onnx.TensorProto.FLOAT16
        onnx.checker.check_model(model)
    except Exception as exc:  # the converter raises plain ValueErrors/AssertionErrors
        raise PipelineError(f"FP16 conversion of {Path(src).name} failed: {type(exc).__name__}: {exc}") from exc
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst
