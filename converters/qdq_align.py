"""One quantization for every tensor a Concat joins, in a QDQ model.

A static QDQ quantizer gives each tensor its own scale and zero point from its calibrated range. Where a
Concat joins tensors quantized differently, ONNX Runtime's ``QLinearConcat`` re-quantizes every element
of every input, on one thread; where the scales are equal it copies bytes. YOLOv8's C2f blocks and its
neck are built of such joins (Split, bottlenecks, Concat; MaxPool and Resize pass their input's scale
through), and on a 2-core x86 CPU the re-quantizing Concats take about a tenth of the int8 model's time.

:func:`align_concat_scales` puts every tensor that a Concat joins, and every tensor tied to those by an
op that passes its input's quantization through (Split, MaxPool, Resize, Reshape, Transpose, Flatten,
Squeeze, Unsqueeze), into one group; each group gets one scale and zero point whose range covers all of
its members' ranges. Members with a narrower range lose resolution (their step grows by the ratio of the
ranges, reported per group), which is why the YOLO converter applies it only where it measures no loss
(:mod:`.yolo_int8`). The int32 biases of the convolutions (and Gemms) that read a re-scaled tensor are
re-derived, so that their scale stays input scale x weight scale, which ONNX Runtime needs to fuse the
node into ``QLinearConv``.

Only per-tensor quantization parameters held as initializers take part; a join with a float side (a node
kept in float by the fallback), or with computed or per-channel parameters, is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = ["AlignReport", "align_concat_scales"]

# Ops whose output holds the same values as their first input, rearranged: a QDQ runtime runs them on the
# integers only when input and output share one quantization.
PASS_THROUGH = frozenset({"Split", "MaxPool", "Resize", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"})
_BIASED = frozenset({"Conv", "ConvTranspose", "Gemm"})


@dataclass
class AlignReport:
    """What :func:`align_concat_scales` changed.

    Attributes:
        concats: Concat nodes whose inputs and output now share one quantization.
        groups: tensor groups given one quantization (a group may hold several Concats).
        widening: per group, the largest ratio of the new range to a member's old range (1.0 = nothing
            lost; 1.75 = some member's quantization step grew by 75 %).
        biases: int32 biases re-derived for their new input scale.
        left: groups left as they are because they would widen a member's range more than allowed.
    """

    concats: List[str] = field(default_factory=list)
    groups: int = 0
    widening: List[float] = field(default_factory=list)
    biases: int = 0
    left: int = 0

    def describe(self) -> str:
        worst = max(self.widening, default=1.0)
        left = f"; {self.left} groups left as they were (they would widen a member's range more)" if self.left else ""
        return (f"{len(self.concats)} Concats in {self.groups} groups given one quantization each (the widest "
                f"range grew a member's step by {worst:.2f}x); {self.biases} int32 biases re-derived{left}")


def _array(init, numpy_helper) -> np.ndarray:
    return numpy_helper.to_array(init)


class _Union:
    def __init__(self) -> None:
        self.parent: Dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    def groups(self) -> List[List[str]]:
        out: Dict[str, List[str]] = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), []).append(x)
        return list(out.values())


def align_concat_scales(model, max_widening: float = float("inf")) -> AlignReport:
    """Give every tensor group a Concat joins one scale and zero point, in place (see the module doc).

    Args:
        model: an ``onnx.ModelProto`` in QDQ format (QuantizeLinear / DequantizeLinear around each op).
        max_widening: a group whose common range would be more than this many times a member's own range
            (that member's quantization step growing as much) is left as it is.

    Returns:
        :class:`AlignReport`; an empty one (and the model unchanged) when no Concat joins quantized tensors.
    """
    from onnx import numpy_helper

    graph = model.graph
    init = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: Dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    quantize = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear"}

    def from_dq(tensor: str) -> Optional[str]:
        """The quantized tensor a float tensor was dequantized from, if it was."""
        p = producer.get(tensor)
        return p.input[0] if p is not None and p.op_type == "DequantizeLinear" and p.input[0] in quantize else None

    def to_q(tensor: str) -> List[str]:
        """The quantized tensors a float tensor is quantized into."""
        return [c.output[0] for c in consumers.get(tensor, []) if c.op_type == "QuantizeLinear"]

    def params(q_tensor: str) -> Optional[Tuple[float, int, np.dtype]]:
        """(scale, zero point, its type) of a quantized tensor; None unless both are per-tensor initializers."""
        node = quantize[q_tensor]
        if len(node.input) < 3 or node.input[1] not in init or node.input[2] not in init:
            return None
        scale, zero = _array(init[node.input[1]], numpy_helper), _array(init[node.input[2]], numpy_helper)
        if scale.size != 1 or zero.size != 1:
            return None
        return float(scale.reshape(())), int(zero.reshape(())), zero.dtype

    union = _Union()
    report = AlignReport()
    joined: set = set()  # the quantized tensors a Concat reads or writes
    concats: List[Tuple[str, str]] = []  # (Concat node, one of its quantized tensors)
    aligned: set = set()  # the groups given one quantization, by their root
    for node in graph.node:
        if node.op_type == "Concat":
            sources = [from_dq(i) for i in node.input if i]
        elif node.op_type in PASS_THROUGH:
            sources = [from_dq(node.input[0])]
        else:
            continue
        sinks = [to_q(o) for o in node.output if o]
        if any(s is None for s in sources) or any(not s for s in sinks):
            continue  # a float side: leave the join as it is
        members = [s for s in sources if s is not None] + [q for s in sinks for q in s]
        if any(params(m) is None for m in members):
            continue  # computed or per-channel parameters: leave the join as it is
        for m in members[1:]:
            union.join(members[0], m)
        if node.op_type == "Concat":
            concats.append((node.name, members[0]))
            joined.update(members)
    if not concats:
        return report

    new_scale: Dict[str, float] = {}
    for number, members in enumerate(union.groups()):
        if joined.isdisjoint(members):
            continue  # only pass-through ops: their quantization is already one
        info = [params(m) for m in members]
        dtype = info[0][2]
        if any(d != dtype for _, _, d in info):
            continue
        lo_q, hi_q = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
        lows = [(lo_q - z) * s for s, z, _ in info]
        highs = [(hi_q - z) * s for s, z, _ in info]
        lo, hi = min(min(lows), 0.0), max(max(highs), 0.0)
        scale = (hi - lo) / (hi_q - lo_q)
        if not scale > 0.0:
            continue
        zero = int(np.clip(round(lo_q - lo / scale), lo_q, hi_q))
        widening = max((hi - lo) / (h - l) for l, h in zip(lows, highs))
        if widening > max_widening:
            report.left += 1
            continue
        report.groups += 1
        report.widening.append(widening)
        aligned.add(union.find(members[0]))
        scale_name, zero_name = f"{members[0]}_aligned_scale", f"{members[0]}_aligned_zero_point"
        graph.initializer.append(numpy_helper.from_array(np.array(scale, np.float32), scale_name))
        graph.initializer.append(numpy_helper.from_array(np.array(zero, dtype), zero_name))
        for m in members:
            q = quantize[m]
            q.input[1], q.input[2] = scale_name, zero_name
            for c in consumers.get(m, []):
                if c.op_type == "DequantizeLinear":
                    c.input[1], c.input[2] = scale_name, zero_name
                    new_scale[c.output[0]] = float(np.float32(scale))

    report.concats = [name for name, member in concats if union.find(member) in aligned]
    # Biases: int32, scale = input scale x weight scale (per output channel), zero point 0.
    init = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type not in _BIASED or len(node.input) < 3 or node.input[0] not in new_scale:
            continue
        dq_w, dq_b = producer.get(node.input[1]), producer.get(node.input[2])
        if dq_w is None or dq_b is None or dq_w.op_type != "DequantizeLinear" or dq_b.op_type != "DequantizeLinear":
            continue
        if not all(name in init for name in (dq_w.input[1], dq_b.input[0], dq_b.input[1])):
            continue
        w_scale = _array(init[dq_w.input[1]], numpy_helper).astype(np.float64)
        b_q = _array(init[dq_b.input[0]], numpy_helper)
        b_scale = _array(init[dq_b.input[1]], numpy_helper).astype(np.float64)
        if b_q.dtype != np.int32:
            continue
        want = (new_scale[node.input[0]] * w_scale).astype(np.float32)
        if want.shape != b_scale.shape and want.size != 1:
            continue
        real = b_q.astype(np.float64) * b_scale
        limit = np.iinfo(np.int32)
        requant = np.clip(np.round(real / want.astype(np.float64)), limit.min, limit.max).astype(np.int32)
        shared = sum(1 for n in graph.node for i in n.input if i in (dq_b.input[0], dq_b.input[1]))
        if shared > 2:  # the bias initializers are read elsewhere too: give this node its own
            suffix = f"_{node.name or node.output[0]}_aligned"
            q_name, s_name = dq_b.input[0] + suffix, dq_b.input[1] + suffix
            graph.initializer.extend([numpy_helper.from_array(requant, q_name),
                                      numpy_helper.from_array(want, s_name)])
            dq_b.input[0], dq_b.input[1] = q_name, s_name
        else:
            init[dq_b.input[0]].CopyFrom(numpy_helper.from_array(requant, dq_b.input[0]))
            init[dq_b.input[1]].CopyFrom(numpy_helper.from_array(want, dq_b.input[1]))
        report.biases += 1
    return report
