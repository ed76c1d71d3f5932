"""Which nodes of a detector stay in float: found by graph analysis, then by measurement.

Two steps, neither driven by node names:

1. **Post-processing tail** (structural, :func:`find_postprocess_tail`). A detector ends by flattening
   its per-scale feature maps into rows ((1, C, H, W) -> (1, C, H*W)) and decoding them: DFL softmax,
   sigmoid, anchor arithmetic, the final concat of 0..640 box pixels with 0..1 scores. Every node
   downstream of such a flattening is decode arithmetic, not a learned feature; int8 there is
   meaningless (one scale cannot cover pixels and probabilities) and saves nothing. The flattening
   points are found from the inferred shapes (a Reshape/Flatten whose input has rank >= 4 and whose
   output has lower rank), and the tail is accepted only if it holds a negligible share of the model's
   multiply-accumulates, so a backbone that flattens early is never swallowed whole.

2. **Measured fallback** (:class:`FallbackSearch`). Everything else is a candidate, grouped into blocks
   (a weighted layer and the activation nodes private to it, e.g. Conv -> Sigmoid -> Mul; or a joining
   node such as Concat/Add). Starting from "all candidates int8", blocks are ranked by the quantization
   error each *adds* (its output's relative error minus its inputs', measured on a few frames in one
   instrumented run of each model), then the best-ranked blocks are tried in float one trial at a time;
   a block is kept in float only if that trial measurably improves agreement with the float model,
   and the search stops as soon as the accuracy budget is met or the trial budget is spent. Each trial's
   accuracy (and the block's share of compute) is recorded for the report.

Shape legend: model inputs (1, 3, h, w); feature maps (1, C, H, W); MACs are multiply-accumulates per
inference.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from edge_runtime.errors import ModelFormatError

__all__ = [
    "Block",
    "GraphIndex",
    "Tail",
    "block_error_gain",
    "find_postprocess_tail",
    "group_blocks",
    "relative_error",
    "tensor_errors",
]

log = logging.getLogger(__name__)

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
FLATTEN_OPS = ("Reshape", "Flatten")
# Element-wise activations that belong to the layer they follow (SiLU = x * sigmoid(x) is Sigmoid + Mul).
ACTIVATION_OPS = ("Relu", "Clip", "Sigmoid", "Mul", "LeakyRelu", "HardSigmoid", "HardSwish", "Tanh", "Elu",
                  "Softplus", "Mish", "PRelu")
MAX_TAIL_MAC_SHARE = 0.01  # a decode tail is arithmetic on rows; a real layer would cost far more


class GraphIndex:
    """Producers, consumers, shapes and initializers of a shape-inferred ONNX graph.

    Args:
        model: an ``onnx.ModelProto`` after shape inference (``onnx.shape_inference.infer_shapes``).
    """

    def __init__(self, model) -> None:
        graph = model.graph
        self.model = model
        self.nodes = list(graph.node)
        self.by_name = {}
        for i, node in enumerate(self.nodes):
            if not node.name:  # QDQ exclusion lists work by node name: give every node one
                node.name = f"{node.op_type}_{i}"
            self.by_name[node.name] = node
        self.initializers = {t.name: t for t in graph.initializer}
        self.graph_inputs = {i.name for i in graph.input} - set(self.initializers)
        self.graph_outputs = [o.name for o in graph.output]
        self.producer: Dict[str, str] = {}
        self.consumers: Dict[str, List[str]] = defaultdict(list)
        for node in self.nodes:
            for out in node.output:
                self.producer[out] = node.name
            for inp in node.input:
                if inp:
                    self.consumers[inp].append(node.name)
        self.shapes: Dict[str, Optional[Tuple[int, ...]]] = {}
        for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
            t = vi.type.tensor_type
            if not t.HasField("shape"):
                continue
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
            self.shapes[vi.name] = dims
        for name, init in self.initializers.items():
            self.shapes[name] = tuple(init.dims)

    def is_constant(self, tensor: str) -> bool:
        """An initializer or the output of a Constant node."""
        if tensor in self.initializers:
            return True
        producer = self.producer.get(tensor)
        return producer is not None and self.by_name[producer].op_type == "Constant"

    def activation_inputs(self, node) -> List[str]:
        """The node's non-constant inputs."""
        return [i for i in node.input if i and not self.is_constant(i)]

    def is_weighted(self, node) -> bool:
        """A learned linear layer: Conv/Gemm/MatMul with a constant weight."""
        return node.op_type in WEIGHTED_OPS and len(node.input) > 1 and self.is_constant(node.input[1])

    def macs(self, node) -> int:
        """Multiply-accumulates of a weighted node (0 for others or unknown shapes)."""
        if not self.is_weighted(node):
            return 0
        out = self.shapes.get(node.output[0])
        w = self.shapes.get(node.input[1])
        if not out or not w or min(out) < 0:
            return 0
        if node.op_type in ("Conv", "ConvTranspose"):
            # out (N, Cout, *spatial), w (Cout, Cin/groups, *kernel): each output element costs Cin/g * k
            return int(np.prod(out, dtype=np.int64) * int(np.prod(w[1:], dtype=np.int64)))
        return int(np.prod(out, dtype=np.int64) * w[0])  # MatMul/Gemm: (..., K) x (K, N)

    def descendants(self, roots: Iterable[str]) -> Set[str]:
        """Node names reachable from ``roots`` (node names, included)."""
        seen: Set[str] = set()
        queue = deque(roots)
        while queue:
            name = queue.popleft()
            if name in seen:
                continue
            seen.add(name)
            for out in self.by_name[name].output:
                queue.extend(self.consumers.get(out, ()))
        return seen


@dataclass(frozen=True)
class Tail:
    """The post-processing tail found by :func:`find_postprocess_tail`.

    Attributes:
        nodes: node names in the tail (topological order).
        flatten_nodes: the flattening points the tail starts from.
        mac_share: the tail's share of the model's multiply-accumulates.
        reason: why the tail is what it is (for the report).
    """

    nodes: Tuple[str, ...]
    flatten_nodes: Tuple[str, ...]
    mac_share: float
    reason: str


def find_postprocess_tail(index: GraphIndex) -> Tail:
    """Find the decode tail: everything downstream of the points where feature maps become rows.

    Args:
        index: the shape-inferred graph.

    Returns:
        The :class:`Tail` (empty when the graph has no such flattening, e.g. an end-to-end export whose
        decode is outside the graph, or when the candidate tail would hold real compute).
    """
    total_macs = sum(index.macs(n) for n in index.nodes) or 1
    flatten = []
    for node in index.nodes:
        if node.op_type not in FLATTEN_OPS or not node.input:
            continue
        shape_in = index.shapes.get(node.input[0])
        shape_out = index.shapes.get(node.output[0])
        if shape_in is None or shape_out is None:
            continue
        if len(shape_in) >= 4 and len(shape_out) < len(shape_in):
            flatten.append(node.name)
    if not flatten:
        return Tail((), (), 0.0, "no feature map is flattened into rows inside the graph: no decode tail")
    names = index.descendants(flatten)
    share = sum(index.macs(index.by_name[n]) for n in names) / total_macs
    if share > MAX_TAIL_MAC_SHARE:
        return Tail((), tuple(flatten), share,
                    f"the nodes after the flattening hold {share:.1%} of the compute: real layers, not a "
                    f"decode tail; left to the measured search")
    ordered = tuple(n.name for n in index.nodes if n.name in names)
    return Tail(ordered, tuple(flatten), share,
                f"decode arithmetic after the feature maps are flattened into rows ({len(flatten)} "
                f"flattening points, {share:.4%} of the compute): int8 cannot represent box pixels and "
                f"scores in one scale and would save nothing")


@dataclass
class Block:
    """A unit of the float-fallback search: nodes that stay float or go int8 together.

    Attributes:
        name: the anchor node's name (the weighted layer, or the joining node).
        nodes: node names, anchor first.
        macs: multiply-accumulates of the block.
        inputs: activation tensors entering the block.
        output: the activation tensor leaving it (what later blocks consume).
    """

    name: str
    nodes: List[str]
    macs: int
    inputs: List[str]
    output: str
    op_type: str = ""


def group_blocks(index: GraphIndex, exclude: Iterable[str] = ()) -> List[Block]:
    """Group the graph's nodes (minus ``exclude``) into fallback blocks, in topological order.

    A weighted layer takes with it the chain of element-wise activations fed only by that chain
    (Conv -> Sigmoid -> Mul is one SiLU-activated conv); any other node (Concat, Add, Split, MaxPool,
    Resize, ...) is a block by itself.

    Raises:
        ModelFormatError: the graph has a node with no output.
    """
    excluded = set(exclude)
    owner: Dict[str, str] = {}
    blocks: Dict[str, Block] = {}
    order: List[str] = []
    for node in index.nodes:
        if node.name in excluded or node.op_type == "Constant":
            continue
        if not node.output:
            raise ModelFormatError(f"node {node.name!r} ({node.op_type}) has no output")
        acts = index.activation_inputs(node)
        sources = {owner.get(index.producer.get(t, ""), None) for t in acts}
        if node.op_type in ACTIVATION_OPS and len(sources) == 1 and None not in sources:
            parent = blocks[next(iter(sources))]
            # Extend a weighted layer's block only along its chain (the block's current output is an
            # input of this node): Conv -> Sigmoid -> Mul(conv, sigmoid) is one block.
            if index.is_weighted(index.by_name[parent.nodes[0]]) and parent.output in acts:
                parent.nodes.append(node.name)
                parent.output = node.output[0]
                owner[node.name] = parent.name
                continue
        block = Block(node.name, [node.name], index.macs(node), acts, node.output[0], node.op_type)
        blocks[node.name] = block
        owner[node.name] = node.name
        order.append(node.name)
    return [blocks[n] for n in order]


def relative_error(candidate: np.ndarray, reference: np.ndarray) -> float:
    """||candidate - reference||^2 / ||reference||^2 (noise-to-signal power; 0 for a zero reference)."""
    ref = reference.astype(np.float64, copy=False)
    power = float(np.vdot(ref, ref))
    diff = candidate.astype(np.float64, copy=False) - ref
    return float(np.vdot(diff, diff)) / power if power > 0 else 0.0


def block_error_gain(blocks: Sequence[Block], errors: Dict[str, float]) -> Dict[str, float]:
    """The quantization error each block adds: its output's relative error minus its worst input's.

    Args:
        blocks: the candidate blocks.
        errors: relative error (int8 vs float) per activation tensor, measured with every candidate
            block quantized; graph inputs count as exact.

    Returns:
        {block name: added error}, larger = more sensitive.
    """
    gain = {}
    for b in blocks:
        base = max((errors.get(t, 0.0) for t in b.inputs), default=0.0)
        gain[b.name] = errors.get(b.output, 0.0) - base
    return gain


def _with_outputs(model, tensors: Sequence[str]):
    """A copy of ``model`` that also outputs ``tensors`` (typed from value_info when known)."""
    import copy

    import onnx

    m = copy.deepcopy(model)
    have = {o.name for o in m.graph.output}
    infos = {vi.name: vi for vi in m.graph.value_info}
    for name in tensors:
        if name in have:
            continue
        vi = infos.get(name)
        m.graph.output.append(copy.deepcopy(vi) if vi is not None else onnx.helper.make_empty_tensor_value_info(name))
        have.add(name)
    return m


def tensor_errors(float_model, quant_model, tensors: Sequence[str], inputs: Iterable[Dict[str, np.ndarray]], *,
                  session_factory: Callable) -> Dict[str, float]:
    """Relative error (int8 vs float, noise-to-signal power) of each tensor, summed over ``inputs``.

    The quantized model's value of tensor ``T`` is read after its QuantizeLinear/DequantizeLinear pair
    (``T_DequantizeLinear_Output``) when it has one, i.e. as the next layer sees it.

    Args:
        float_model, quant_model: ``onnx.ModelProto`` of the float and the QDQ model.
        tensors: float-model tensor names to compare.
        inputs: feeds ({input name: array}), e.g. a few letterboxed frames.
        session_factory: ``session_factory(model_bytes) -> onnxruntime.InferenceSession``.

    Returns:
        {tensor: error power / signal power over all feeds}.
    """
    q_names = {o for n in quant_model.graph.node for o in n.output}
    q_tensors = [f"{t}_DequantizeLinear_Output" if f"{t}_DequantizeLinear_Output" in q_names else t for t in tensors]
    f_sess = session_factory(_with_outputs(float_model, tensors).SerializeToString())
    q_sess = session_factory(_with_outputs(quant_model, q_tensors).SerializeToString())
    noise = dict.fromkeys(tensors, 0.0)
    signal = dict.fromkeys(tensors, 0.0)
    for feed in inputs:
        f_out = f_sess.run(list(tensors), feed)
        q_out = q_sess.run(q_tensors, feed)
        for name, f, q in zip(tensors, f_out, q_out):
            ref = f.astype(np.float64, copy=False)
            diff = q.astype(np.float64, copy=False) - ref
            noise[name] += float(np.vdot(diff, diff))
            signal[name] += float(np.vdot(ref, ref))
    return {t: (noise[t] / signal[t] if signal[t] > 0 else 0.0) for t in tensors}
