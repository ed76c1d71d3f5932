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
   node such as Concat/Add). Starting from "all candidates int8", trial quantizations measure what
   keeping blocks in float buys in agreement with the float model on the user's frames: first the last
   layer of each branch (feeding the decode), then contiguous runs of equal compute, added in order of
   measured gain per MAC until the budget is met, then halves given back to int8 wherever the budget
   still holds. Every trial's accuracy and float share is recorded for the report.

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
    "Budget",
    "FallbackSearch",
    "GraphIndex",
    "NEUTRAL_OPS",
    "SearchResult",
    "Tail",
    "Trial",
    "TrialScore",
    "boundary_blocks",
    "find_postprocess_tail",
    "group_blocks",
    "split_groups",
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
    """Find the decode tail: everything after the last weighted layer of each branch.

    That is every node downstream of the points where feature maps become rows, plus the nodes without
    weights between the last layers and those points (they feed nothing but the decode).

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
    # Walk upstream from the flattening: a node without weights whose every consumer is already in the
    # tail (YOLOv8's per-scale Concat of box and class logits) only feeds the decode; it joins the tail.
    # The walk stops at weighted layers: the last conv of each branch is a real layer, left to measurement.
    changed = True
    while changed:
        changed = False
        for node in reversed(index.nodes):
            if node.name in names or index.is_weighted(node) or node.op_type == "Constant":
                continue
            consumers = [c for o in node.output for c in index.consumers.get(o, ())]
            feeds_output = any(o in index.graph_outputs for o in node.output)
            if consumers and not feeds_output and all(c in names for c in consumers):
                names.add(node.name)
                changed = True
    share = sum(index.macs(index.by_name[n]) for n in names) / total_macs
    if share > MAX_TAIL_MAC_SHARE:
        return Tail((), tuple(flatten), share,
                    f"the nodes after the flattening hold {share:.1%} of the compute: real layers, not a "
                    f"decode tail; left to the measured search")
    ordered = tuple(n.name for n in index.nodes if n.name in names)
    return Tail(ordered, tuple(flatten), share,
                f"decode after the last layer of each branch ({len(ordered)} nodes from {len(flatten)} "
                f"flattening points, {share:.4%} of the compute): int8 cannot represent box pixels and "
                f"scores in one scale and would save nothing")


def boundary_blocks(index: GraphIndex, blocks: Sequence["Block"], tail: Tail) -> List[str]:
    """The blocks whose output feeds only the tail: the last layer of each branch.

    Their int8 output is rounded once more just before the decode (class logits straight into the
    score), for a negligible share of the compute, so the search tries them in float first.
    """
    tail_nodes = set(tail.nodes)
    out = []
    for b in blocks:
        consumers = index.consumers.get(b.output, ())
        if consumers and all(c in tail_nodes for c in consumers):
            out.append(b.name)
    return out


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


# -- the measured search ------------------------------------------------------------------------------

# Ops that pass their input's quantization parameters through (no new rounding): never worth a trial.
NEUTRAL_OPS = ("Split", "MaxPool", "Resize", "Reshape", "Transpose", "Slice", "Squeeze", "Unsqueeze",
               "Flatten", "Gather", "Pad", "Identity")


@dataclass(frozen=True)
class TrialScore:
    """Accuracy of one trial quantization against the float model on the search frames.

    Attributes:
        map50: mAP@0.5 vs float.
        count_agreement: fraction of frames with equal counts.
        score_err: mean |score difference| over matched boxes: the smooth measure that ranks trials
            when the two budget measures, coarse on a few frames, tie.
    """

    map50: float
    count_agreement: float
    score_err: float

    def meets(self, budget: "Budget") -> bool:
        return self.map50 >= budget.min_map50 and self.count_agreement >= budget.min_count_agreement

    def key(self, budget: "Budget") -> Tuple[float, float]:
        """Sort key, lower = better: budget shortfall first, then score error."""
        short = max(budget.min_map50 - self.map50, budget.min_count_agreement - self.count_agreement, 0.0)
        return (round(short, 6), self.score_err)


@dataclass(frozen=True)
class Budget:
    """Accuracy the int8 model must keep against the float model."""

    min_map50: float = 0.95
    min_count_agreement: float = 0.95

    def describe(self) -> str:
        return f"mAP@0.5 vs fp32 >= {self.min_map50:g} and count agreement >= {self.min_count_agreement:.0%}"


@dataclass(frozen=True)
class Trial:
    """One measured trial of the search.

    Attributes:
        step: what was tried ("all int8", "float group 3/8", "re-quantize half of ...").
        changed: the blocks whose precision this trial changed relative to the state it started from.
        float_blocks: all blocks in float in this trial.
        score: its accuracy.
        accepted: whether the search kept this state.
        mac_share: share of the candidate compute that is in float in this trial.
    """

    step: str
    changed: Tuple[str, ...]
    float_blocks: Tuple[str, ...]
    score: TrialScore
    accepted: bool
    mac_share: float


@dataclass
class SearchResult:
    """Outcome of :class:`FallbackSearch`: the float blocks chosen and every trial measured."""

    float_blocks: List[str]
    score: TrialScore
    met: bool
    trials: List[Trial] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        return min(self.trials, key=lambda t: (t.score.key(Budget(0, 0)), t.mac_share))


def split_groups(blocks: Sequence[Block], groups: int) -> List[List[Block]]:
    """Cut blocks (topological order) into ``groups`` contiguous runs of about equal MACs."""
    if not blocks:
        return []
    groups = max(1, min(groups, len(blocks)))
    total = sum(max(b.macs, 1) for b in blocks)
    out: List[List[Block]] = [[]]
    acc = 0.0
    for b in blocks:
        if out[-1] and acc >= total * len(out) / groups and len(out) < groups:
            out.append([])
        out[-1].append(b)
        acc += max(b.macs, 1)
    return [g for g in out if g]


class FallbackSearch:
    """Choose the blocks to keep in float by measuring trial quantizations.

    The model is quantized with every candidate block in int8, then, while the budget is not met:
    the ``first`` blocks (the last layer of each branch) are tried in float together and kept if that
    helps; each of ``groups`` contiguous runs of the remaining blocks (equal compute) is tried in float
    on its own; the runs are added to the float set in order of measured error reduction per MAC, each
    addition confirmed by a trial and kept only if it improved agreement; once the budget is met,
    halves of the float set are tried back in int8 and stay int8 where the budget still holds
    (bisection, so speed is given back wherever accuracy allows). Every trial counts against
    ``max_trials``; a trial is "better" when its budget shortfall is smaller, or equal with a smaller
    mean score error.

    Per-node trials are not the default because on YOLOv8s the error is spread thinly over the
    network: keeping any single conv in float changed the mean score error by less than the
    frame-to-frame noise (measured on vtest.avi), so a per-node greedy search spends its trials on noise.

    Args:
        blocks: candidate blocks in topological order (the tail already excluded).
        evaluate: ``evaluate(float_block_names) -> TrialScore`` on the search frames.
        budget: the accuracy budget.
        max_trials: upper bound on calls of ``evaluate``.
        groups: number of contiguous runs tried in the coarse step.
        give_back_tolerance: a half goes back to int8 only if the budget still holds and the mean score
            error grows by at most this fraction over the state that first met the budget: a margin,
            since the budget is checked on a handful of validation frames.
        min_give_back_share: halves holding less than this share of the candidate compute are not tried
            back in int8: too little speed to win for the accuracy risked (the last layer of each branch).
        log_fn: progress messages.
    """

    def __init__(self, blocks: Sequence[Block], evaluate: Callable[[Sequence[str]], TrialScore], *,
                 budget: Budget, max_trials: int = 16, groups: int = 6, give_back_tolerance: float = 0.05,
                 min_give_back_share: float = 0.02, log_fn: Optional[Callable[[str], None]] = None):
        self.blocks = [b for b in blocks if b.op_type not in NEUTRAL_OPS]
        self.evaluate = evaluate
        self.budget = budget
        self.max_trials = max(1, int(max_trials))
        self.groups = groups
        self.give_back_tolerance = float(give_back_tolerance)
        self.min_give_back_share = float(min_give_back_share)
        self.log = log_fn or log.info
        self._macs = {b.name: max(b.macs, 0) for b in self.blocks}
        self._total = sum(self._macs.values()) or 1
        self.trials: List[Trial] = []

    def _share(self, names: Iterable[str]) -> float:
        return sum(self._macs.get(n, 0) for n in set(names)) / self._total

    def _try(self, step: str, changed: Sequence[str], float_set: Set[str]) -> Trial:
        score = self.evaluate(sorted(float_set, key=self._order))
        trial = Trial(step, tuple(changed), tuple(sorted(float_set, key=self._order)), score, False,
                      self._share(float_set))
        self.trials.append(trial)
        self.log(f"trial {len(self.trials)}/{self.max_trials}: {step}: mAP50 {score.map50:.4f}, counts "
                 f"{score.count_agreement:.1%}, score err {score.score_err:.4f}, float {trial.mac_share:.1%} of MACs")
        return trial

    def _order(self, name: str) -> int:
        return self._index.get(name, 0)

    def _accept(self, trial: Trial) -> Trial:
        accepted = Trial(trial.step, trial.changed, trial.float_blocks, trial.score, True, trial.mac_share)
        self.trials[self.trials.index(trial)] = accepted
        return accepted

    def _left(self) -> int:
        return self.max_trials - len(self.trials)

    def run(self, first: Sequence[str] = ()) -> SearchResult:
        """Search; returns the chosen float blocks (met=False when the budget was not reached).

        Args:
            first: blocks tried together in float before anything else (see :func:`boundary_blocks`).
        """
        self._index = {b.name: i for i, b in enumerate(self.blocks)}
        budget = self.budget
        current = self._accept(self._try("all candidates int8", (), set()))
        if current.score.meets(budget) or not self.blocks:
            return SearchResult([], current.score, current.score.meets(budget), self.trials)
        first = [n for n in first if n in self._index]
        if first and self._left() > 0:
            t = self._try(f"float the last layer of each branch ({len(first)} blocks)", first, set(first))
            if t.score.key(budget) < current.score.key(budget):
                current = self._accept(t)
        if not current.score.meets(budget):
            current = self._add_runs(current)
        if current.score.meets(budget):
            current = self._give_back(current)
        return SearchResult(list(current.float_blocks), current.score, current.score.meets(budget), self.trials)

    def _add_runs(self, current: Trial) -> Trial:
        """Coarse step: each contiguous run in float on its own, then greedy by gain per MAC."""
        budget = self.budget
        rest = [b for b in self.blocks if b.name not in set(current.float_blocks)]
        runs = split_groups(rest, self.groups)
        measured = []
        for i, run in enumerate(runs):
            if self._left() <= 0:
                break
            names = [b.name for b in run]
            t = self._try(f"float run {i + 1}/{len(runs)} ({names[0]} .. {names[-1]}, {len(names)} blocks)",
                          names, set(current.float_blocks) | set(names))
            gain = current.score.score_err - t.score.score_err
            measured.append((t, names, gain / max(self._share(names), 1e-9)))
        met = [m for m in measured if m[0].score.meets(budget)]
        if met:  # one run suffices: the cheapest such
            return self._accept(min(met, key=lambda m: m[0].mac_share)[0])
        base = current
        for t, names, per_mac in sorted(measured, key=lambda m: -m[2]):
            if per_mac <= 0 or self._left() <= 0:
                break
            if current is base:
                cand = t  # measured on exactly this state already
            else:
                cand = self._try(f"add {t.step.split(' (')[0]}", names, set(current.float_blocks) | set(names))
            if cand.score.key(budget) < current.score.key(budget):
                current = self._accept(cand)
                if current.score.meets(budget):
                    break
        return current

    def _give_back(self, current: Trial) -> Trial:
        """Bisect the float set: try halves back in int8, keep them int8 where the budget still holds
        (within the score-error tolerance)."""
        pending = [list(current.float_blocks)]
        err_limit = current.score.score_err * (1.0 + self.give_back_tolerance)
        while pending and self._left() > 0:
            part = pending.pop(0)
            if len(part) < 2 or self._share(part) < 2 * self.min_give_back_share:
                continue
            for half in (part[: len(part) // 2], part[len(part) // 2:]):
                if self._left() <= 0:
                    break
                if self._share(half) < self.min_give_back_share:
                    continue
                float_set = set(current.float_blocks) - set(half)
                t = self._try(f"back to int8: {half[0]} .. {half[-1]} ({len(half)} blocks)", half, float_set)
                if t.score.meets(self.budget) and t.score.score_err <= err_limit:
                    current = self._accept(t)
                elif len(half) >= 2:
                    pending.append(half)
        return current
