"""Re-specialise a fixed-size anchor-free YOLO detector (YOLOv8 / YOLO11 exports) to another input size.

A 4:3 camera letterboxed into a 640x640 model spends a quarter of every inference on grey padding.
Ultralytics avoids this in PyTorch with rectangular inference (pad only to a multiple of the stride); an
ONNX export made at a fixed size cannot, because the export bakes the input size into a few tensors of
the detection head: the anchor-point table (1, 2, N), the stride table (1, N) and the reshape targets
that name the box count N = sum over strides s of (h / s) * (w / s). Every convolution, pooling and
nearest-neighbour upsampling is size-agnostic. :func:`respecialise` rebuilds exactly those tensors for
another (h, w) and nothing else; it refuses any graph in which a tensor sized by N is not one it
recognises, so a head it does not understand is never silently mis-shaped.

At the model's own size the rewrite reproduces every tensor bit for bit (``tests/test_rect_model.py``
proves it on the built-in detector), which is what shows that the tables are computed as the export
computes them.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ..errors import BackendUnavailableError, ModelFormatError

__all__ = ["anchor_tables", "respecialise", "STRIDES"]

STRIDES: Tuple[int, ...] = (8, 16, 32)  # the P3/P4/P5 heads of YOLOv8 and YOLO11


def anchor_tables(h: int, w: int, strides: Sequence[int] = STRIDES) -> Tuple[np.ndarray, np.ndarray]:
    """The anchor-point centres (1, 2, N) in grid cells (x then y, row-major per stride) and the stride
    of each point (1, N), for an (h, w) input; N = sum over strides of (h // s) * (w // s)."""
    points, stride_of = [], []
    for s in strides:
        gh, gw = h // s, w // s
        ys, xs = np.meshgrid(np.arange(gh, dtype=np.float32) + 0.5, np.arange(gw, dtype=np.float32) + 0.5,
                             indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        stride_of.append(np.full(gh * gw, s, np.float32))
    return np.concatenate(points, axis=1)[None].astype(np.float32), np.concatenate(stride_of)[None]


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise BackendUnavailableError("rectangular inference rewrites the model with the `onnx` package: "
                                      "pip install onnx") from exc
    return onnx, numpy_helper


def respecialise(model_bytes: bytes, hw: Tuple[int, int], *, where: str = "model") -> bytes:
    """Return the serialised model with its fixed (1, 3, H, W) input changed to (1, 3, h, w).

    Args:
        model_bytes: a serialised ONNX model with a static (1, 3, H, W) input and one (1, 4 + nc, N)
            output whose N is the anchor-point count of (H, W).
        hw: the new input (h, w); both multiples of the largest stride (32).
        where: the model's name, for messages.

    Raises:
        ModelFormatError: the input is not static, ``hw`` is not a multiple of 32, the graph stores its
            tensors outside the file, or a tensor sized by N is not an anchor table, a stride table or
            a reshape target (a head this function does not understand).
        BackendUnavailableError: the ``onnx`` package is not installed.
    """
    onnx, numpy_helper = _import_onnx()
    h, w = int(hw[0]), int(hw[1])
    top = max(STRIDES)
    if h < top or w < top or h % top or w % top:
        raise ModelFormatError(f"{where}: rectangular input must be positive multiples of {top}, got {h}x{w}")
    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends: the file changed or is not ONNX
        raise ModelFormatError(f"{where}: cannot be read for rewriting: {exc}") from exc
    if len(model.graph.input) != 1 or len(model.graph.output) < 1:
        raise ModelFormatError(f"{where}: expected one image input and a box output")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[2:]):
        raise ModelFormatError(f"{where}: the input is not a static (1, 3, H, W) image")
    old_h, old_w = dims[2].dim_value, dims[3].dim_value
    old_points, old_strides = anchor_tables(old_h, old_w)
    new_points, new_strides = anchor_tables(h, w)
    n_old, n_new = old_points.shape[2], new_points.shape[2]
    found = {"anchor points": 0, "strides": 0}

    def rewritten(array: np.ndarray, name: str):
        if array.shape == old_points.shape and np.array_equal(array, old_points):
            found["anchor points"] += 1
            return new_points.astype(array.dtype)
        if array.shape == old_strides.shape and np.array_equal(array, old_strides):
            found["strides"] += 1
            return new_strides.astype(array.dtype)
        if array.dtype.kind == "i" and array.ndim == 1 and n_old in array.tolist():
            return np.where(array == n_old, n_new, array).astype(array.dtype)  # a reshape / slice target
        if n_old in array.shape:
            raise ModelFormatError(f"{where}: tensor {name!r} of shape {list(array.shape)} is sized by the "
                                   f"{n_old} anchor points but is not an anchor, stride or shape table; "
                                   f"cannot run this head at {h}x{w}")
        return None

    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelFormatError(f"{where}: weights stored outside the file; cannot rewrite in memory")
        new = rewritten(numpy_helper.to_array(init), init.name)
        if new is not None:
            init.CopyFrom(numpy_helper.from_array(new, init.name))
    for node in model.graph.node:
        if node.op_type != "Constant":
            continue
        for attr in node.attribute:
            if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                new = rewritten(numpy_helper.to_array(attr.t), node.output[0])
                if new is not None:
                    attr.t.CopyFrom(numpy_helper.from_array(new, attr.t.name))
    if found["anchor points"] < 1 or found["strides"] < 1:
        missing = [k for k, v in found.items() if v < 1]
        raise ModelFormatError(f"{where}: no {' or '.join(missing)} table of a {old_h}x{old_w} anchor-free head "
                               f"found; only YOLOv8 / YOLO11-style exports can run at another size")
    dims[2].dim_value, dims[3].dim_value = h, w
    for out in model.graph.output:
        for dim in out.type.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value == n_old:
                dim.dim_value = n_new
    del model.graph.value_info[:]  # intermediate shapes of the old size; onnxruntime re-infers them
    return model.SerializeToString()
