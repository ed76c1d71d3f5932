"""The proof that a conversion is good: a JSON + markdown report written next to the output models.

A report lists every model produced (fp32, int8, 4-bit, ...) with its size on disk, its latency
measured in the same run as the others (median and p90 of interleaved runs, same session options and
threads), its error against the reference (the framework model or the fp32 ONNX) and the bound it was
held to, task metrics (sentence-embedding cosine, faces found, ...), the measured float fallback
(which nodes were kept in float and why), and the CPU it was measured on, with a warning when that CPU
lacks int8 dot-product instructions.

The detection section (mAP@0.5 vs fp32, per-frame count agreement) is filled by the YOLO static-int8
converter; :class:`DetectionMetrics` and :class:`FallbackRow` are its slots, rendered when present.
"""

from __future__ import annotations

import enum
import json
import math
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ._io import atomic_write_text
from .cpu_features import CpuFeatures, detect_cpu
from .verify import Bound, Latency, OutputMetrics

__all__ = ["QuantScheme", "ModelEntry", "DetectionMetrics", "FallbackRow", "ConversionReport", "fallback_rows"]


class QuantScheme(str, enum.Enum):
    """How a model's weights (and activations) are stored and computed."""

    FP32 = "fp32"
    INT8_DYNAMIC = "int8-dynamic"        # int8 weights, activations quantized per run (MatMulInteger)
    INT8_STATIC_QDQ = "int8-static-qdq"  # int8 weights and calibrated activations (QuantizeLinear/DequantizeLinear)
    INT4_WEIGHT_ONLY = "int4-weight-only"  # 4-bit block-quantized weights (MatMulNBits)


@dataclass
class ModelEntry:
    """One produced model and everything measured about it.

    Args:
        name: short label (``fp32``, ``int8``, ``q4``; ``pnet-int8``...).
        path: file path (written relative to the report's directory).
        scheme: storage/compute scheme.
        size_bytes: bytes on disk (external data included).
        reference: what ``metrics`` compare against (``torch``, ``fp32``).
        metrics: per-output error against ``reference``.
        bound: the bound it was verified against (None: not enforced).
        latency: interleaved latency, or None when not measured.
        task_metrics: named task-level numbers (e.g. ``embedding_cosine_min``).
        settings: quantization settings (block size, accuracy level, calibration, ...).
    """

    name: str
    path: str
    scheme: QuantScheme
    size_bytes: int
    reference: str = "fp32"
    metrics: List[OutputMetrics] = field(default_factory=list)
    bound: Optional[Bound] = None
    latency: Optional[Latency] = None
    task_metrics: Dict[str, float] = field(default_factory=dict)
    settings: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, object]:
        return {
            "name": self.name, "path": self.path, "scheme": self.scheme.value, "size_bytes": self.size_bytes,
            "reference": self.reference, "metrics": [m.to_dict() for m in self.metrics],
            "bound": asdict(self.bound) if self.bound else None,
            "latency": self.latency.to_dict() if self.latency else None,
            "task_metrics": dict(self.task_metrics), "settings": dict(self.settings),
        }


@dataclass(frozen=True)
class DetectionMetrics:
    """Detection accuracy of a quantized detector against its fp32 model on the user's frames.

    Args:
        map50: mAP@0.5 of the quantized model, fp32 detections taken as ground truth.
        count_agreement: fraction of frames where both models count the same objects per class.
        frames: number of frames evaluated.
    """

    map50: float
    count_agreement: float
    frames: int


@dataclass(frozen=True)
class FallbackRow:
    """One candidate node of a measured float fallback.

    Args:
        node: ONNX node name.
        op_type: its operator (MatMul, Conv, ...).
        sensitivity: the measured local metric (see ``metric``), larger = more harmed by quantization.
        metric: what ``sensitivity`` is, e.g. ``rel_err`` (relative output error of the node alone).
        kept_float: True when the node stays in float in the published model.
    """

    node: str
    op_type: str
    sensitivity: float
    metric: str
    kept_float: bool


@dataclass
class ConversionReport:
    """Everything a conversion proves; :meth:`write` saves ``STEM.report.json`` and ``STEM.report.md``.

    Args:
        title: what was converted, e.g. ``all-MiniLM-L6-v2 -> ONNX``.
        source: where the weights came from (path or asset name).
        threads: intra-op threads used for every latency.
        cpu: the CPU measured on (detected when omitted).
        models: the produced models, reference model first.
        notes: findings worth reading (chosen exporter/opset, what was excluded, ...).
        detection: model name -> detection metrics (the YOLO converter fills this).
        float_fallback: model name -> candidate nodes with their sensitivity and decision.
    """

    title: str
    source: str
    threads: int = 1
    cpu: CpuFeatures = field(default_factory=detect_cpu)
    models: List[ModelEntry] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    detection: Dict[str, DetectionMetrics] = field(default_factory=dict)
    float_fallback: Dict[str, List[FallbackRow]] = field(default_factory=dict)
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def model(self, name: str) -> ModelEntry:
        """The entry called ``name`` (KeyError when absent)."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"report has no model {name!r}; it has {[m.name for m in self.models]}")

    def warnings(self) -> List[str]:
        return self.cpu.warnings()

    def to_dict(self) -> Dict[str, object]:
        return {
            "title": self.title, "source": self.source, "created_utc": self.created_utc,
            "threads": self.threads, "cpu": self.cpu.to_dict(), "versions": _versions(),
            "warnings": self.warnings(), "notes": list(self.notes),
            "models": [m.to_dict() for m in self.models],
            "detection": {k: asdict(v) for k, v in self.detection.items()},
            "float_fallback": {k: [asdict(r) for r in rows] for k, rows in self.float_fallback.items()},
        }

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", f"Source: `{self.source}`  ", f"Created: {self.created_utc}  ",
                 f"CPU: {self.cpu.model} ({self.cpu.arch}), int8 dot product: "
                 f"{self.cpu.int8_dot or 'none'}; latency with {self.threads} thread(s)", ""]
        for w in self.warnings():
            lines += [f"> **Warning:** {w}", ""]
        base = self.models[0] if self.models else None
        lines += ["## Models", "",
                  "| model | scheme | size MB | size vs first | latency median ms | p90 ms | speed vs first |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for m in self.models:
            size_ratio = m.size_bytes / base.size_bytes if base and base.size_bytes else math.nan
            lat, p90, speed = "-", "-", "-"
            if m.latency:
                lat, p90 = f"{m.latency.median_ms:.2f}", f"{m.latency.p90_ms:.2f}"
                if base and base.latency and m.latency.median_ms > 0:
                    speed = f"{base.latency.median_ms / m.latency.median_ms:.2f}x"
            lines.append(f"| {m.name} | {m.scheme.value} | {m.size_bytes / 1e6:.2f} | {size_ratio:.2f} | "
                         f"{lat} | {p90} | {speed} |")
        lines += ["", "## Accuracy", "",
                  "| model | vs | output | max abs err | mean abs err | cosine | inputs | bound |",
                  "|---|---|---|---:|---:|---:|---:|---|"]
        for m in self.models:
            for o in m.metrics:
                lines.append(f"| {m.name} | {m.reference} | {o.name} | {o.max_abs_err:.3g} | {o.mean_abs_err:.3g} "
                             f"| {o.cosine:.6f} | {o.samples} | {m.bound.describe() if m.bound else '-'} |")
        task = [(m.name, k, v) for m in self.models for k, v in m.task_metrics.items()]
        if task:
            lines += ["", "## Task metrics", "", "| model | metric | value |", "|---|---|---:|"]
            lines += [f"| {n} | {k} | {v:.4f} |" for n, k, v in task]
        lines += ["", "## Detection accuracy vs fp32", ""]
        if self.detection:
            lines += ["| model | mAP@0.5 vs fp32 | count agreement | frames |", "|---|---:|---:|---:|"]
            lines += [f"| {k} | {d.map50:.4f} | {d.count_agreement:.3f} | {d.frames} |"
                      for k, d in self.detection.items()]
        else:
            lines.append("Not applicable to these models (filled by detector conversions).")
        lines += ["", "## Float fallback", ""]
        if any(self.float_fallback.values()):
            for name, rows in self.float_fallback.items():
                kept = [r for r in rows if r.kept_float]
                lines += [f"**{name}**: {len(kept)} of {len(rows)} candidate nodes kept in float "
                          "(most sensitive first).", "",
                          "| node | op | sensitivity | metric | kept float |", "|---|---|---:|---|---|"]
                lines += [f"| {r.node} | {r.op_type} | {r.sensitivity:.4g} | {r.metric} | "
                          f"{'yes' if r.kept_float else ''} |" for r in rows]
                lines.append("")
        else:
            lines.append("No node was kept in float.")
        settings = [(m.name, m.settings) for m in self.models if m.settings]
        if settings:
            lines += ["", "## Settings", ""]
            lines += [f"- **{n}**: " + ", ".join(f"{k}={v}" for k, v in s.items()) for n, s in settings]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def write(self, directory: "str | Path", stem: str) -> Tuple[Path, Path]:
        """Write ``STEM.report.json`` and ``STEM.report.md`` into ``directory`` (atomically each).

        Model paths are stored relative to ``directory`` when they lie inside it.
        """
        directory = Path(directory)
        for m in self.models:
            p = Path(m.path)
            if p.is_absolute():
                try:
                    m.path = str(p.relative_to(directory.resolve()))
                except ValueError:
                    try:
                        m.path = str(p.relative_to(directory))
                    except ValueError:
                        pass
        json_path = atomic_write_text(directory / f"{stem}.report.json",
                                      json.dumps(self.to_dict(), indent=2, allow_nan=True) + "\n")
        md_path = atomic_write_text(directory / f"{stem}.report.md", self.to_markdown())
        return json_path, md_path


def _versions() -> Dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("onnx", "onnxruntime", "torch", "transformers", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def fallback_rows(ranked: Sequence[Tuple[str, str, float]], kept: Sequence[str], metric: str) -> List[FallbackRow]:
    """Rows for :attr:`ConversionReport.float_fallback` from ``(node, op_type, sensitivity)`` triples."""
    kept_set = set(kept)
    return [FallbackRow(n, op, float(s), metric, n in kept_set) for n, op, s in ranked]
