"""Measured float fallback: find which nodes to keep in float so a quantized model meets its bound.

Two steps, both measured on the user's own inputs:

1. **Rank** (:func:`rank_matmul_nodes`): every MatMul/Gemm with a constant weight is simulated alone in
   NumPy on its real input activations (captured from one fp32 run per feed): the relative error
   ``||x W - q(x) q(W)|| / ||x W||`` under the chosen scheme (dynamic int8: per-tensor u8 activations and
   per-channel s8 weights; weight-only: block-wise n-bit weights, plus int8 activations per block at
   accuracy level 4). Cheap: no re-quantization, no extra sessions.
2. **Search** (:func:`search_fallback`): quantize for real with the k most sensitive nodes excluded and
   evaluate the end-to-end metric; the smallest k that meets the target is found by bisection over the
   ranked list (assuming more float never hurts, which the final evaluation of the chosen k checks by
   measurement anyway).

Other node kinds (Conv for the YOLO path) plug in by supplying their own ranking as
``(node, op_type, sensitivity)`` triples; :func:`search_fallback` does not care where it came from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_runtime.errors import ConfigError

from .verify import AccuracyError, open_session

__all__ = ["SimulatedScheme", "FallbackResult", "capture_tensors", "rank_matmul_nodes", "search_fallback",
           "smooth_matmul_inputs"]

Feed = Dict[str, np.ndarray]
Ranked = List[Tuple[str, str, float]]  # (node name, op type, sensitivity), most sensitive first

_MAX_ROWS = 4096  # activation rows sampled per node for the simulation (enough for a stable ratio)


class SimulatedScheme(str, enum.Enum):
    """Quantization scheme simulated when ranking nodes."""

    INT8_DYNAMIC = "int8-dynamic"
    WEIGHT_ONLY = "weight-only"


@dataclass
class FallbackResult:
    """Outcome of :func:`search_fallback`.

    Attributes:
        kept_float: node names kept in float (a prefix of the ranking).
        score: the end-to-end metric of the chosen model.
        trials: (k kept in float, score) for every evaluation made, in order.
        path: the chosen model's path, as returned by the ``build`` callable.
    """

    kept_float: List[str]
    score: float
    trials: List[Tuple[int, float]] = field(default_factory=list)
    path: object = None


def _weights(model) -> Dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def capture_tensors(model, feeds: Sequence[Feed], names: Sequence[str], *,
                    threads: int = 1) -> Dict[str, List[np.ndarray]]:
    """Run ``model`` (a ModelProto) on ``feeds`` and return the intermediate tensors called ``names``.

    The tensors are exposed as extra graph outputs of a copy of the model; graph optimizations are off
    so the intermediate names survive.
    """
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    existing = {o.name for o in copy.graph.output}
    for name in names:
        if name not in existing:
            copy.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = open_session(copy.SerializeToString(), threads=threads, optimize=False)
    out_names = [o.name for o in session.get_outputs()]
    index = {n: out_names.index(n) for n in names}
    captured: Dict[str, List[np.ndarray]] = {n: [] for n in names}
    in_names = [i.name for i in session.get_inputs()]
    for feed in feeds:
        outs = session.run(None, {n: feed[n] for n in in_names})
        for n in names:
            captured[n].append(outs[index[n]])
    return captured


def _rows(xs: List[np.ndarray], k: int, rng: np.random.Generator) -> np.ndarray:
    x = np.concatenate([a.reshape(-1, k) for a in xs], axis=0).astype(np.float32)
    if x.shape[0] > _MAX_ROWS:
        x = x[rng.choice(x.shape[0], _MAX_ROWS, replace=False)]
    return x


def _dynamic_u8(x: np.ndarray) -> np.ndarray:
    # DynamicQuantizeLinear: per-tensor asymmetric u8 over a range that includes 0.
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = (hi - lo) / 255.0 or 1.0
    zp = np.clip(np.round(-lo / scale), 0, 255)
    return (np.clip(np.round(x / scale) + zp, 0, 255) - zp) * scale


def _per_channel_s8(w: np.ndarray) -> np.ndarray:
    # Symmetric per output column (axis 1 of MatMul's B), [-127, 127].
    scale = np.abs(w).max(axis=0, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return np.clip(np.round(w / scale), -127, 127) * scale


def _blockwise(w: np.ndarray, bits: int, block: int, symmetric: bool) -> np.ndarray:
    # Blocks of ``block`` rows along K (axis 0), as MatMulNBits stores them; K padded to a multiple.
    k, n = w.shape
    pad = (-k) % block
    wp = np.concatenate([w, np.zeros((pad, n), w.dtype)]) if pad else w
    wb = wp.reshape(-1, block, n)
    qmax = 2 ** (bits - 1) - 1
    if symmetric:
        scale = np.abs(wb).max(axis=1, keepdims=True) / qmax
        scale[scale == 0] = 1.0
        q = np.clip(np.round(wb / scale), -qmax - 1, qmax) * scale
    else:
        lo, hi = np.minimum(wb.min(axis=1, keepdims=True), 0), np.maximum(wb.max(axis=1, keepdims=True), 0)
        scale = (hi - lo) / (2 ** bits - 1)
        scale[scale == 0] = 1.0
        zp = np.round(-lo / scale)
        q = (np.clip(np.round(wb / scale) + zp, 0, 2 ** bits - 1) - zp) * scale
    return q.reshape(-1, n)[:k]


def _act_blockwise_s8(x: np.ndarray, block: int) -> np.ndarray:
    # accuracy_level 4: activations quantized to s8 per block of K, symmetric.
    m, k = x.shape
    pad = (-k) % block
    xp = np.concatenate([x, np.zeros((m, pad), x.dtype)], axis=1) if pad else x
    xb = xp.reshape(m, -1, block)
    scale = np.abs(xb).max(axis=2, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return (np.clip(np.round(xb / scale), -127, 127) * scale).reshape(m, -1)[:, :k]


def rank_matmul_nodes(model, feeds: Sequence[Feed], scheme: SimulatedScheme, *, bits: int = 4,
                      block_size: int = 32, symmetric: bool = True, int8_activations: bool = True,
                      threads: int = 1, seed: int = 0) -> Ranked:
    """Relative output error of each constant-weight MatMul/Gemm quantized alone, most sensitive first.

    Args:
        model: fp32 ModelProto.
        feeds: representative inputs (a handful is enough).
        scheme: what to simulate; ``bits``/``block_size``/``symmetric``/``int8_activations`` apply to
            ``WEIGHT_ONLY`` (``int8_activations`` = accuracy level 4).
        threads: threads for the capture run. seed: row sub-sampling.

    Returns:
        ``(node, op_type, rel_err)`` for every candidate, descending ``rel_err``.

    Raises:
        ConfigError: no feeds.
    """
    if not feeds:
        raise ConfigError("rank_matmul_nodes: no input feeds; pass at least one representative input")
    weights = _weights(model)
    candidates = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        w = weights.get(node.input[1])
        if w is None or w.ndim != 2 or w.dtype != np.float32:
            continue
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            if trans_a:
                continue
            w = w.T if trans_b else w
        candidates.append((node, w))
    if not candidates:
        return []
    acts = capture_tensors(model, feeds, sorted({n.input[0] for n, _ in candidates}), threads=threads)
    rng = np.random.default_rng(seed)
    ranked: Ranked = []
    for node, w in candidates:
        x = _rows(acts[node.input[0]], w.shape[0], rng)
        y = x @ w
        if scheme is SimulatedScheme.INT8_DYNAMIC:
            yq = _dynamic_u8(x) @ _per_channel_s8(w)
        else:
            xq = _act_blockwise_s8(x, block_size) if int8_activations else x
            yq = xq @ _blockwise(w, bits, block_size, symmetric)
        denom = float(np.linalg.norm(y)) or 1.0
        ranked.append((node.name, node.op_type, float(np.linalg.norm(y - yq)) / denom))
    ranked.sort(key=lambda r: -r[2])
    return ranked


def search_fallback(ranked: Ranked, build: Callable[[List[str]], object], evaluate: Callable[[object], float],
                    target: float, *, max_float: Optional[int] = None, what: str = "quantized model") -> FallbackResult:
    """Smallest prefix of ``ranked`` to keep in float so that ``evaluate(build(prefix)) >= target``.

    Args:
        ranked: candidates, most sensitive first (from :func:`rank_matmul_nodes` or any other ranking).
        build: makes the quantized model with the given nodes excluded; returns something ``evaluate``
            takes (typically a path). Called O(log n) times.
        evaluate: end-to-end metric, higher is better (e.g. the minimum embedding cosine).
        target: the metric required.
        max_float: most nodes allowed in float (None: all candidates).
        what: for the error message.

    Returns:
        :class:`FallbackResult` for the smallest passing k found.

    Raises:
        AccuracyError: even with ``max_float`` nodes in float the target is missed; the message gives
            the best score reached and what to change.
    """
    names = [r[0] for r in ranked]
    limit = len(names) if max_float is None else max(0, min(int(max_float), len(names)))
    trials: List[Tuple[int, float]] = []
    cache: Dict[int, Tuple[float, object]] = {}

    def score(k: int) -> float:
        if k not in cache:
            built = build(names[:k])
            cache[k] = (float(evaluate(built)), built)
            trials.append((k, cache[k][0]))
        return cache[k][0]

    if score(0) >= target:
        return FallbackResult([], cache[0][0], trials, cache[0][1])
    # Bisection; score(limit) is only evaluated when everything below it failed, which saves a build.
    lo, hi = 0, limit  # invariant: score(lo) < target, and score(hi) >= target unless hi == limit is untested
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if score(mid) >= target:
            hi = mid
        else:
            lo = mid
    if hi == 0 or score(hi) < target:
        best = max(s for _, s in trials)
        raise AccuracyError(f"{what}: metric {best:.5f} < target {target:g} even with {limit} of {len(names)} "
                            "candidate nodes kept in float; use more bits (int8 instead of 4-bit), a smaller "
                            "block size, allow more nodes in float, or relax the target")
    return FallbackResult(names[:hi], cache[hi][0], trials, cache[hi][1])


def smooth_matmul_inputs(model, feeds: Sequence[Feed], scheme: SimulatedScheme, *, bits: int = 4,
                         block_size: int = 32, int8_activations: bool = True,
                         alphas: Sequence[float] = (0.0, 0.25, 0.5, 0.75), threads: int = 1, seed: int = 0):
    """Move activation outliers into the weights before quantization (SmoothQuant, Xiao et al. 2023).

    For each tensor ``x`` feeding constant-weight MatMuls, ``x W = (x / s) (diag(s) W)`` exactly; a
    ``Mul(x, 1/s)`` node is inserted and the weights' rows scaled by ``s``, with
    ``s_j = max|x_j|^a / max|W_j,:|^(1-a)``. The exponent ``a`` is chosen per tensor from ``alphas`` by the
    simulated quantization error on real activations (``a = 0`` leaves the tensor unchanged). Outlier
    channels (BERT-style LayerNorm outputs reach 20x the median channel) otherwise set the per-tensor
    int8 scale and flatten every other channel to a few levels.

    Args:
        model: fp32 ModelProto (not modified; a smoothed copy is returned).
        feeds: representative inputs. scheme, bits, block_size, int8_activations: as in
            :func:`rank_matmul_nodes`. alphas: candidate exponents. threads, seed: as there.

    Returns:
        ``(smoothed ModelProto, {input tensor: chosen alpha})``.
    """
    import onnx
    from onnx import numpy_helper

    if not feeds:
        raise ConfigError("smooth_matmul_inputs: no input feeds; pass at least one representative input")
    weights = _weights(model)
    groups: Dict[str, List] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2:
            w = weights.get(node.input[1])
            if w is not None and w.ndim == 2 and w.dtype == np.float32:
                groups.setdefault(node.input[0], []).append(node)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if not groups:
        return out, {}
    acts = capture_tensors(model, feeds, sorted(groups), threads=threads)
    rng = np.random.default_rng(seed)
    chosen: Dict[str, float] = {}
    new_weights: Dict[str, np.ndarray] = {}
    inserts = []
    used_weights: Dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2:
            used_weights[node.input[1]] = used_weights.get(node.input[1], 0) + 1
    for tensor, nodes in groups.items():
        if any(used_weights[n.input[1]] > 1 for n in nodes):
            continue  # a weight shared with another input cannot take this input's scales
        ws = [weights[n.input[1]] for n in nodes]
        k = ws[0].shape[0]
        x = _rows(acts[tensor], k, rng)
        ax = np.maximum(np.abs(x).max(axis=0), 1e-5)
        aw = np.maximum(np.max([np.abs(w).max(axis=1) for w in ws], axis=0), 1e-5)
        best_alpha, best_err, best_s = 0.0, None, None
        for alpha in alphas:
            s = (ax ** alpha / aw ** (1 - alpha)).astype(np.float32) if alpha > 0 else np.ones(k, np.float32)
            s = np.clip(s, 1e-4, 1e4)
            xs = x / s
            err = 0.0
            for w in ws:
                y = x @ w
                wsc = w * s[:, None]
                if scheme is SimulatedScheme.INT8_DYNAMIC:
                    yq = _dynamic_u8(xs) @ _per_channel_s8(wsc)
                else:
                    xq = _act_blockwise_s8(xs, block_size) if int8_activations else xs
                    yq = xq @ _blockwise(wsc, bits, block_size, True)
                err += float(np.linalg.norm(y - yq) / (np.linalg.norm(y) or 1.0))
            if best_err is None or err < best_err - 1e-9:
                best_alpha, best_err, best_s = float(alpha), err, s
        chosen[tensor] = best_alpha
        if best_alpha == 0.0:
            continue
        for n, w in zip(nodes, ws):
            new_weights[n.input[1]] = (w * best_s[:, None]).astype(np.float32)
        inserts.append((tensor, (1.0 / best_s).astype(np.float32), nodes))
    for init in out.graph.initializer:
        if init.name in new_weights:
            init.CopyFrom(numpy_helper.from_array(new_weights[init.name], init.name))
    rename: Dict[str, str] = {}
    new_nodes = []
    for tensor, inv, nodes in inserts:
        scaled = f"{tensor}__smoothed"
        out.graph.initializer.append(numpy_helper.from_array(inv, f"{tensor}__smooth_inv_scale"))
        new_nodes.append(onnx.helper.make_node("Mul", [tensor, f"{tensor}__smooth_inv_scale"], [scaled],
                                               name=f"{tensor}__smooth"))
        for n in nodes:
            rename[n.name] = scaled
    # Insert each Mul right before its first consumer so the node list stays topologically sorted.
    first_consumer = {}
    for (tensor, _, nodes), mul in zip(inserts, new_nodes):
        names = {n.name for n in nodes}
        first = next(n.name for n in out.graph.node if n.name in names)
        first_consumer[first] = mul
    ordered = []
    for node in out.graph.node:
        if node.name in first_consumer:
            ordered.append(first_consumer[node.name])
        if node.name in rename:
            node.input[0] = rename[node.name]
        ordered.append(node)
    out.graph.ClearField("node")
    out.graph.node.extend(ordered)
    return out, chosen
