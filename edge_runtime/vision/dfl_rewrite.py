"""Replace the distribution-focal-loss (DFL) decode of a YOLOv8 / YOLO11 export by an equivalent that runs
on every core.

The export decodes each box side as the expectation of a 16-bin softmax: ``Reshape (1, 4, 16, N) ->
Transpose (0, 2, 1, 3) -> Softmax(axis=1) -> Conv 1x1 with weights 0..15``. onnxruntime runs a softmax
over a non-last axis on one thread, through a transposed copy. :func:`rewrite_dfl` computes the same expectation
as ``sum(w * exp(x - max)) / sum(exp(x - max))`` with reductions over the bin axis (multi-threaded,
no copy), then applies the export's transpose to the (four times smaller) result. The output is the
same up to float rounding (``tests/test_dfl_rewrite.py`` bounds it on the built-in detector). Nothing else in the graph changes; a graph without this exact pattern
is returned as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from ..errors import BackendUnavailableError, ModelFormatError

__all__ = ["rewrite_dfl"]


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise BackendUnavailableError("the DFL rewrite edits the model with the `onnx` package: "
                                      "pip install onnx") from exc
    return onnx, helper, numpy_helper


def _attrs(helper, node) -> Dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constant(model, numpy_helper, name: str) -> Optional[np.ndarray]:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def rewrite_dfl(model_bytes: Union[bytes, Path], *, where: str = "model") -> Optional[bytes]:
    """Return the serialised model (given as bytes or as its file) with its DFL softmax replaced, or None
    when it has no such softmax.

    The pattern must be exact: a 4-D ``Transpose`` feeding only a ``Softmax`` over axis 1 that feeds only
    a bias-free 1x1 ``Conv`` with one output channel (stride 1, no padding, no groups). A graph whose
    weights live outside the file is left alone (None), since it is rebuilt in memory.

    Raises:
        ModelFormatError: ``model_bytes`` is not ONNX, or the pattern's weight tensor cannot be read.
        BackendUnavailableError: the ``onnx`` package is not installed.
    """
    onnx, helper, numpy_helper = _import_onnx()
    try:
        if isinstance(model_bytes, Path):  # parsed straight from the file: no copy of its bytes is held
            model = onnx.load(str(model_bytes), load_external_data=False)
        else:
            model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFormatError(f"{where}: cannot be read for rewriting: {exc}") from exc
    graph = model.graph
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in graph.initializer):
        return None
    consumers: Dict[str, List] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {out: node for node in graph.node for out in node.output}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    graph_outputs = {o.name for o in graph.output}

    for softmax in graph.node:
        if softmax.op_type != "Softmax" or opset < 13:
            continue
        transpose = producer.get(softmax.input[0])
        users = consumers.get(softmax.output[0], [])
        if transpose is None or transpose.op_type != "Transpose" or len(users) != 1 or users[0].op_type != "Conv":
            continue
        conv = users[0]
        perm = list(_attrs(helper, transpose).get("perm", []))
        axis = int(_attrs(helper, softmax).get("axis", -1))
        if len(perm) != 4 or axis not in (1, -3) or len(consumers.get(transpose.output[0], [])) != 1:
            continue
        if {transpose.output[0], softmax.output[0]} & graph_outputs or len(conv.input) != 2:
            continue
        conv_attrs = _attrs(helper, conv)
        if (list(conv_attrs.get("strides", [1, 1])) != [1, 1] or any(conv_attrs.get("pads", [0, 0, 0, 0]))
                or list(conv_attrs.get("dilations", [1, 1])) != [1, 1] or conv_attrs.get("group", 1) != 1):
            continue
        try:
            weight = _constant(model, numpy_helper, conv.input[1])
        except Exception as exc:  # onnx raises ValueError / TypeError on a tensor whose bytes do not fit
            raise ModelFormatError(f"{where}: tensor {conv.input[1]!r} cannot be read: {exc}") from exc
        if weight is None or weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[2:] != (1, 1):
            continue
        bins = weight.shape[1]
        source_axis = perm[1]  # the softmax's axis, counted before the transpose
        shape = [1, 1, 1, 1]
        shape[source_axis] = bins
        x, out = transpose.input[0], conv.output[0]
        tag = f"{conv.name or out}_dfl"
        w_name, axes_name = f"{tag}_bins", f"{tag}_axes"
        graph.initializer.extend([
            numpy_helper.from_array(weight.reshape(shape), w_name),
            numpy_helper.from_array(np.array([source_axis], np.int64), axes_name),
        ])
        if opset >= 18:
            reduce_max = helper.make_node("ReduceMax", [x, axes_name], [f"{tag}_max"], keepdims=1)
        else:
            reduce_max = helper.make_node("ReduceMax", [x], [f"{tag}_max"], axes=[source_axis], keepdims=1)
        replacement = [
            reduce_max,
            helper.make_node("Sub", [x, f"{tag}_max"], [f"{tag}_shifted"]),
            helper.make_node("Exp", [f"{tag}_shifted"], [f"{tag}_exp"]),
            helper.make_node("ReduceSum", [f"{tag}_exp", axes_name], [f"{tag}_norm"], keepdims=1),
            helper.make_node("Mul", [f"{tag}_exp", w_name], [f"{tag}_weighted"]),
            helper.make_node("ReduceSum", [f"{tag}_weighted", axes_name], [f"{tag}_sum"], keepdims=1),
            helper.make_node("Div", [f"{tag}_sum", f"{tag}_norm"], [f"{tag}_mean"]),
            helper.make_node("Transpose", [f"{tag}_mean"], [out], perm=perm),
        ]
        # In place of the Conv, so a graph that is not topologically sorted (as quantizers leave them)
        # still has every input defined where it was.
        nodes = []
        for node in graph.node:
            if node is conv:
                nodes.extend(replacement)
            elif node is not transpose and node is not softmax:
                nodes.append(node)
        del graph.node[:]
        graph.node.extend(nodes)
        if not any(n.input and conv.input[1] in n.input for n in graph.node):
            kept = [i for i in graph.initializer if i.name != conv.input[1]]
            del graph.initializer[:]
            graph.initializer.extend(kept)
        return model.SerializeToString()
    return None
