"""Hugging Face encoder directory -> ONNX fp32 (verified) -> dynamic int8 and 4-bit, with a report.

Input: a local directory with ``config.json``, ``model.safetensors`` (or a sharded index) and
``tokenizer.json``; nothing is fetched (``local_files_only``). Output, in ``out_dir``:
``STEM.onnx`` (fp32; inputs ``input_ids``, ``attention_mask``[, ``token_type_ids``], output
``last_hidden_state``; dynamic batch and sequence), ``STEM.int8.onnx`` (ORT dynamic int8, per-channel),
``STEM.q4.onnx`` (``MatMulNBits`` 4-bit, block size and accuracy level settable), and
``STEM.report.json`` / ``.md``.

Each quantized model must keep the sentence-embedding cosine against PyTorch at or above its target on
the selection sentences; when uniform quantization misses it, the most sensitive MatMuls (ranked by
simulated error on real activations, see ``fallback.py``) stay in float, as few as the target allows.

Shape legend: N sentences, S tokens, D hidden size.
"""

from __future__ import annotations

import contextlib
import inspect
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_runtime.errors import BackendUnavailableError, InputError, ModelFormatError

from ._io import atomic_output, file_size
from .fallback import SimulatedScheme, rank_matmul_nodes, search_fallback, smooth_matmul_inputs
from .quantize import AccuracyLevel, load_onnx, quantize_dynamic_int8, quantize_weight_only
from .report import ConversionReport, ModelEntry, QuantScheme, fallback_rows
from .sentence import Pooling, Tokenizer, pool, read_pooling
from .torch_export import DEFAULT_OPSET, Axis, ExportResult, export_torch
from .verify import Bound, MetricsAccumulator, compare_outputs, measure_latency, open_session, run_session

__all__ = ["HFModelDir", "SELECTION_SENTENCES", "inspect_hf_dir", "export_transformer", "convert_transformer"]

PathLike = Union[str, Path]

# Used to choose the float fallback and to verify the export; varied in length, topic and register.
# Tests evaluate on other sentences, so the targets are checked on text the search never saw.
SELECTION_SENTENCES = (
    "A man is playing a guitar on the street corner.",
    "The stock market fell sharply after the announcement.",
    "How do I reset my router to factory settings?",
    "Photosynthesis converts light energy into chemical energy.",
    "She forgot her umbrella and got soaked on the way home.",
    "The committee postponed the vote until next Thursday.",
    "Neural networks can approximate any continuous function.",
    "Fresh bread smells wonderful in the morning.",
    "Turn left at the second traffic light.",
    "The violinist tuned her instrument before the concert began.",
    "Glaciers are retreating faster than scientists predicted.",
    "Can you recommend a good book about ancient Rome?",
    "The toddler stacked the blocks and knocked them over, laughing.",
    "Interest rates are expected to rise again this quarter.",
    "ok",
    "Our train was delayed by forty minutes because of a signal failure near the bridge, so we missed "
    "the opening speech entirely and had to watch the recording later that evening.",
)


@dataclass(frozen=True)
class HFModelDir:
    """A validated local Hugging Face model directory."""

    path: Path
    model_type: str
    hidden_size: Optional[int]
    max_positions: int
    weights: Tuple[Path, ...]
    pooling: Pooling


def inspect_hf_dir(path: PathLike) -> HFModelDir:
    """Check that ``path`` holds a loadable encoder: config, weights and tokenizer.

    Raises:
        ModelFormatError: not a directory, or ``config.json`` / safetensors weights / ``tokenizer.json``
            missing or malformed; the message names the file to add.
    """
    import json

    path = Path(path)
    if not path.is_dir():
        raise ModelFormatError(f"{str(path)!r} is not a directory; pass a Hugging Face model directory "
                               "(config.json, model.safetensors, tokenizer.json)")
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ModelFormatError(f"{str(path)!r}: config.json is missing; copy it from the model's repository")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{str(cfg_path)!r}: not valid JSON ({exc}); re-copy config.json") from exc
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_type"), str):
        raise ModelFormatError(f"{str(cfg_path)!r}: no 'model_type' key; this is not a transformers config")
    weights = tuple(sorted(path.glob("*.safetensors")))
    if not weights:
        legacy = [p.name for p in path.glob("pytorch_model*.bin")]
        hint = (f" (found {legacy}: pickled weights are not loaded for safety; convert them to safetensors)"
                if legacy else "")
        raise ModelFormatError(f"{str(path)!r}: no *.safetensors weights{hint}; add model.safetensors")
    if not (path / "tokenizer.json").is_file():
        raise ModelFormatError(f"{str(path)!r}: tokenizer.json is missing; save the fast tokenizer "
                               "(AutoTokenizer.from_pretrained(...).save_pretrained(dir))")
    max_pos = int(cfg.get("max_position_embeddings") or 512)
    return HFModelDir(path, cfg["model_type"], cfg.get("hidden_size"), max_pos, weights,
                      read_pooling(path, default_max_len=max_pos))


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def _load_torch_model(info: HFModelDir):
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise BackendUnavailableError("torch and transformers are needed; pip install 'edge-runtime[convert]'") from exc
    try:
        with _quiet_transformers():
            model = AutoModel.from_pretrained(str(info.path), local_files_only=True)
    except Exception as exc:  # OSError (bad weights), ValueError (unknown model_type), safetensors errors
        raise ModelFormatError(f"{str(info.path)!r}: transformers could not load the model: "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    model.eval()

    accepted = [n for n in ("input_ids", "attention_mask", "token_type_ids")
                if n in inspect.signature(model.forward).parameters]

    class _LastHidden(torch.nn.Module):
        """forward(input_ids, attention_mask, token_type_ids) -> last_hidden_state (a flat ONNX signature)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    class _LastHiddenNoTypes(_LastHidden):
        """The same for encoders without segment ids (DistilBERT, RoBERTa-style)."""

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    if accepted[:2] != ["input_ids", "attention_mask"]:
        raise ModelFormatError(f"{str(info.path)!r}: {type(model).__name__}.forward takes {accepted}; "
                               "expected at least input_ids and attention_mask (an encoder)")
    if "token_type_ids" in accepted:
        return _LastHidden(model).eval(), accepted
    return _LastHiddenNoTypes(model).eval(), accepted


def _batches(sentences: Sequence[str], size: int) -> List[List[str]]:
    return [list(sentences[i:i + size]) for i in range(0, len(sentences), size)]


def export_transformer(model_dir: PathLike, out_path: PathLike, *, sentences: Sequence[str] = SELECTION_SENTENCES,
                       opset: int = DEFAULT_OPSET, bound: Bound = Bound(max_abs_err=1e-4), threads: int = 1,
                       _loaded=None) -> ExportResult:
    """Export an HF encoder to ONNX fp32, verified against PyTorch on ``sentences`` and random tokens.

    Args:
        model_dir: local Hugging Face directory.
        out_path: the ``.onnx`` to write (only after verification passed).
        sentences: real text for verification (batches of 8, padded).
        opset: ONNX opset. bound: accuracy on ``last_hidden_state``. threads: ORT threads.

    Raises:
        ModelFormatError: a bad directory or weights. AccuracyError: the bound is not met.
    """
    info = inspect_hf_dir(model_dir)
    wrapper, accepted = _loaded or _load_torch_model(info)
    tok = Tokenizer(info.path, info.pooling.max_seq_length)
    feeds = [tok(b) for b in _batches(list(sentences), 8)]
    example = tuple(feeds[0][n] for n in accepted)
    axes = {n: {0: Axis("batch", 1, 1024), 1: Axis("sequence", 1, info.max_positions)} for n in accepted}
    return export_torch(wrapper, example, out_path, input_names=accepted, output_names=["last_hidden_state"],
                        opset=opset, dynamic_axes=axes, bound=bound,
                        verify_inputs=[tuple(f[n] for n in accepted) for f in feeds[1:]], n_random=2,
                        threads=threads)


def _embeddings(path: Path, feeds: Sequence[Dict[str, np.ndarray]], pooling: Pooling, threads: int) -> np.ndarray:
    session = open_session(path, threads=threads)
    names = [i.name for i in session.get_inputs()]
    out = [pool(run_session(session, {n: f[n] for n in names})[0], f["attention_mask"], pooling) for f in feeds]
    return np.concatenate(out, axis=0)


def _save(model, path: Path) -> None:
    import onnx

    onnx.save(model, str(path))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na, 1e-12)


def convert_transformer(model_dir: PathLike, out_dir: PathLike, *, stem: Optional[str] = None,
                        int8: bool = True, q4: bool = True, block_size: int = 32,
                        accuracy_level: AccuracyLevel = AccuracyLevel.INT8, int8_target: float = 0.995,
                        q4_target: float = 0.985, fallback_bits: int = 8, smooth: bool = True,
                        sentences: Sequence[str] = SELECTION_SENTENCES,
                        opset: int = DEFAULT_OPSET, threads: int = 1, latency_repeats: int = 20,
                        quiet: bool = False) -> ConversionReport:
    """Convert an HF encoder to fp32, dynamic-int8 and 4-bit ONNX with a report proving each.

    Args:
        model_dir: local Hugging Face directory (config.json, safetensors, tokenizer.json).
        out_dir: existing directory for the models and the report.
        stem: file name stem (default: the directory's name).
        int8, q4: which quantized models to make.
        block_size, accuracy_level: 4-bit ``MatMulNBits`` settings.
        int8_target, q4_target: minimum sentence-embedding cosine against PyTorch over ``sentences``;
            the float fallback keeps as few MatMuls in float as needed to reach it.
        fallback_bits: 4-bit fallback nodes become 8-bit ``MatMulNBits`` (8) or stay fp32 (32).
        smooth: move activation outliers into weights first (SmoothQuant; exact in fp32).
        sentences: selection/verification text.
        opset: ONNX opset. threads: ORT threads (every latency uses the same). latency_repeats: rounds.
        quiet: no progress bars.

    Returns:
        The :class:`ConversionReport` (also written as ``STEM.report.json`` / ``.md``).

    Raises:
        ModelFormatError: bad directory or weights. AccuracyError: the export bound or a target cannot
            be met. InputError: ``out_dir`` missing.
    """
    if fallback_bits not in (8, 32):
        raise InputError(f"convert_transformer: fallback_bits must be 8 or 32, got {fallback_bits!r}")
    info = inspect_hf_dir(model_dir)
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(f"convert_transformer: output directory {str(out_dir)!r} does not exist")
    stem = stem or info.path.name
    loaded = _load_torch_model(info)
    wrapper, accepted = loaded
    fp32_path = out_dir / f"{stem}.onnx"
    exported = export_transformer(info.path, fp32_path, sentences=sentences, opset=opset, threads=threads,
                                  _loaded=loaded)
    tok = Tokenizer(info.path, info.pooling.max_seq_length)
    feeds = [tok(b) for b in _batches(list(sentences), 8)]
    import torch

    with torch.no_grad():
        hidden_t = [wrapper(*(torch.from_numpy(f[n]) for n in accepted)).numpy() for f in feeds]
    emb_torch = np.concatenate([pool(h, f["attention_mask"], info.pooling) for h, f in zip(hidden_t, feeds)])

    report = ConversionReport(title=f"{info.path.name} ({info.model_type}) -> ONNX", source=str(info.path),
                              threads=threads)
    report.notes.append(f"exporter: torch.onnx dynamo, opset {opset}; verified on {len(exported.checked_shapes)} "
                        "input batches (real sentences + random tokens)")
    report.notes.append(f"pooling: {info.pooling.mode.value}, normalize={info.pooling.normalize}, "
                        f"max_seq_length={info.pooling.max_seq_length}"
                        f"{'' if info.pooling.from_config else ' (defaults: no sentence-transformers config found)'}")
    emb_fp32 = _embeddings(fp32_path, feeds, info.pooling, threads)
    report.models.append(ModelEntry("fp32", str(fp32_path), QuantScheme.FP32, exported.size_bytes, reference="torch",
                                    metrics=exported.metrics, bound=exported.bound, settings={"opset": opset},
                                    task_metrics={"embedding_cosine_min_vs_torch":
                                                  float(_cosines(emb_fp32, emb_torch).min())}))
    model = load_onnx(fp32_path)
    plans = []
    if int8:
        plans.append(("int8", QuantScheme.INT8_DYNAMIC, int8_target, SimulatedScheme.INT8_DYNAMIC,
                      lambda src, dst, ex: quantize_dynamic_int8(src, dst, nodes_to_exclude=ex),
                      {"per_channel": True, "weights": "s8", "activations": "u8 per tensor, per run"}))
    if q4:
        def _q4(src, dst, ex):
            if not ex or fallback_bits == 32:
                return quantize_weight_only(src, dst, bits=4, block_size=block_size, accuracy_level=accuracy_level,
                                            nodes_to_exclude=ex)
            mixed = Path(dst).with_name(Path(dst).stem + ".4bit.onnx")
            quantize_weight_only(src, mixed, bits=4, block_size=block_size, accuracy_level=accuracy_level,
                                 nodes_to_exclude=ex)
            return quantize_weight_only(mixed, dst, bits=8, block_size=block_size, accuracy_level=accuracy_level)

        plans.append(("q4", QuantScheme.INT4_WEIGHT_ONLY, q4_target, SimulatedScheme.WEIGHT_ONLY, _q4,
                      {"bits": 4, "fallback_bits": fallback_bits, "block_size": block_size,
                       "accuracy_level": int(AccuracyLevel(accuracy_level)), "symmetric": True, "algorithm": "rtn"}))
    paths = {"fp32": fp32_path}
    with tempfile.TemporaryDirectory(prefix=f".{stem}.work-", dir=out_dir) as work:
        int8_acts = int(accuracy_level) == AccuracyLevel.INT8
        for name, scheme, target, sim, quantize, settings in plans:
            source = fp32_path
            if smooth:
                smoothed, alphas = smooth_matmul_inputs(model, feeds[:2], sim, block_size=block_size,
                                                        int8_activations=int8_acts, threads=threads)
                source = Path(work) / f"{name}-smoothed.onnx"
                _save(smoothed, source)
                settings = {**settings, "smoothed_inputs": f"{sum(a > 0 for a in alphas.values())}/{len(alphas)}"}
            else:
                smoothed = model
            ranked = rank_matmul_nodes(smoothed, feeds[:2], sim, block_size=block_size,
                                       int8_activations=int8_acts, threads=threads)
            counter = iter(range(1 << 30))

            def build(exclude, quantize=quantize, name=name, source=source):
                dst = Path(work) / f"{name}-{next(counter)}.onnx"
                return quantize(source, dst, exclude)

            def evaluate(path):
                return float(_cosines(_embeddings(path, feeds, info.pooling, threads), emb_torch).min())

            result = search_fallback(ranked, build, evaluate, target, what=f"{stem}.{name}.onnx")
            final = out_dir / f"{stem}.{name}.onnx"
            with atomic_output(final, where="convert_transformer") as tmp:
                shutil.move(str(result.path), str(tmp))
            paths[name] = final
            acc = MetricsAccumulator(["last_hidden_state"])
            session = open_session(final, threads=threads)
            for f, h in zip(feeds, hidden_t):
                acc.add(compare_outputs([h], run_session(session, {n: f[n] for n in accepted}), ["last_hidden_state"]))
            del session
            cos = _cosines(_embeddings(final, feeds, info.pooling, threads), emb_torch)
            report.models.append(ModelEntry(
                name, str(final), scheme, file_size(final), reference="torch", metrics=acc.result(),
                bound=Bound(min_cosine=target),
                task_metrics={"embedding_cosine_min_vs_torch": float(cos.min()),
                              "embedding_cosine_mean_vs_torch": float(cos.mean()),
                              "nodes_kept_float": float(len(result.kept_float))},
                settings={**settings, "target_embedding_cosine": target,
                          "fallback_trials": " ".join(f"k={k}:{s:.4f}" for k, s in result.trials)}))
            report.float_fallback[name] = fallback_rows(ranked, result.kept_float, "rel_err")
            if name == "q4" and fallback_bits == 8 and result.kept_float:
                report.notes.append(f"q4: the {len(result.kept_float)} fallback MatMuls are stored as 8-bit "
                                    "MatMulNBits, not fp32 ('kept float' = kept out of 4-bit)")
    feed = feeds[0]
    runners = {}
    for name, path in paths.items():
        session = open_session(path, threads=threads)
        names = [i.name for i in session.get_inputs()]
        runners[name] = (lambda f, s=session, ns=names: s.run(None, {n: f[n] for n in ns}))
    latency = measure_latency(runners, [feed], repeats=latency_repeats, quiet=quiet)
    for entry in report.models:
        entry.latency = latency[entry.name]
    report.notes.append(f"latency: batch of {feed['input_ids'].shape[0]} sentences x {feed['input_ids'].shape[1]} "
                        f"tokens, {latency_repeats} interleaved rounds after 3 warm-up rounds")
    report.write(out_dir, stem)
    return report
