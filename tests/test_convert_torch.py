"""PyTorch -> ONNX export, verification, quantization wrappers, fallback search, report, CPU features."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the convert extra (torch) is not installed")

from edge_runtime.converters.cpu_features import detect_cpu, parse_cpuinfo  # noqa: E402
from edge_runtime.converters.fallback import search_fallback  # noqa: E402
from edge_runtime.converters.quantize import quantize_dynamic_int8, quantize_weight_only  # noqa: E402
from edge_runtime.converters.report import (  # noqa: E402
    ConversionReport, DetectionMetrics, FallbackRow, ModelEntry, QuantScheme)
from edge_runtime.converters.torch_export import Axis, export_torch  # noqa: E402
from edge_runtime.converters.verify import (  # noqa: E402
    AccuracyError, Bound, MetricsAccumulator, compare_outputs, measure_latency, open_session)

pytestmark = pytest.mark.convert


class SmallNet(torch.nn.Module):
    """Conv + pooling + a dense head: shapes vary with the input's height and width."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.act = torch.nn.PReLU(8)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        y = self.act(self.conv(x))
        return self.head(y.mean(dim=(2, 3))), torch.softmax(y, dim=1)


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(64, 128)
        self.b = torch.nn.Linear(128, 32)

    def forward(self, x):
        return self.b(torch.nn.functional.gelu(self.a(x)))


def test_export_verifies_on_random_shapes_and_matches_torch_at_a_new_shape(tmp_path):
    torch.manual_seed(0)
    net = SmallNet().eval()
    out = tmp_path / "small.onnx"
    result = export_torch(net, torch.randn(2, 3, 16, 20), out, input_names=["image"], output_names=["logits", "prob"],
                          dynamic_axes={"image": {0: Axis("batch", 1, 8), 2: ("height", 4, 64), 3: "width"}},
                          n_random=3)
    assert out.is_file() and result.size_bytes == out.stat().st_size
    assert all(m.max_abs_err <= 1e-4 for m in result.metrics) and result.metrics[0].samples == 4
    assert len({s[0] for s in result.checked_shapes}) > 1  # the random inputs really changed shape
    session = open_session(out)
    x = torch.randn(3, 3, 33, 7)
    got = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        ref = [t.numpy() for t in net(x)]
    assert [g.shape for g in got] == [r.shape for r in ref]
    assert max(float(np.abs(g - r).max()) for g, r in zip(got, ref)) < 1e-4


def test_export_from_state_dict_path_and_class(tmp_path):
    torch.manual_seed(1)
    weights = tmp_path / "mlp.pt"
    torch.save(MLP().state_dict(), weights)
    result = export_torch((weights, MLP), np.random.default_rng(0).normal(size=(4, 64)).astype(np.float32),
                          tmp_path / "mlp.onnx", dynamic_axes={"input_0": {0: "batch"}})
    assert result.input_names == ["input_0"] and result.output_names == ["output_0"]
    assert result.metrics[0].max_abs_err <= 1e-4


def test_dynamic_int8_and_4bit_stay_close_to_fp32(tmp_path):
    torch.manual_seed(2)
    fp32 = tmp_path / "mlp.onnx"
    # (batch, tokens, features): Linear exports as MatMul (2-D inputs become Gemm, which MatMulNBits skips)
    export_torch(MLP().eval(), torch.randn(2, 8, 64), fp32, dynamic_axes={"input_0": {0: "batch"}})
    int8 = quantize_dynamic_int8(fp32, tmp_path / "mlp.int8.onnx")
    q4 = quantize_weight_only(fp32, tmp_path / "mlp.q4.onnx", block_size=32)
    x = {"input_0": np.random.default_rng(3).normal(size=(4, 8, 64)).astype(np.float32)}
    ref = open_session(fp32).run(None, x)
    for path, min_cos in ((int8, 0.985), (q4, 0.95)):  # random weights: no outliers to tame
        ops = {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
        assert ("MatMulInteger" in ops) if path == int8 else ("MatMulNBits" in ops)
        metrics = compare_outputs(ref, open_session(path).run(None, x), ["y"])
        assert 0 < metrics[0].max_abs_err and metrics[0].cosine >= min_cos


def test_metrics_accumulate_worst_case_and_bound_messages():
    acc = MetricsAccumulator(["y"])
    acc.add(compare_outputs([np.zeros(4)], [np.full(4, 0.1)], ["y"]))
    acc.add(compare_outputs([np.ones(4)], [np.ones(4) * 1.5], ["y"]))
    (m,) = acc.result()
    assert m.max_abs_err == pytest.approx(0.5) and m.worst_sample == 1 and m.samples == 2
    with pytest.raises(AccuracyError, match=r"'y': max \|err\| 0.5 > bound 0.1 .*input #1\); try this"):
        from edge_runtime.converters.verify import check_bound

        check_bound([m], Bound(max_abs_err=0.1), what="test", hint="try this")
    nan = compare_outputs([np.ones(3)], [np.array([1.0, np.nan, 1.0])], ["y"])[0]
    assert nan.max_abs_err == float("inf") and nan.cosine == -1.0


def test_latency_is_interleaved_and_counts_runs():
    calls = []
    lat = measure_latency({"a": lambda f: calls.append("a"), "b": lambda f: calls.append("b")}, [{}],
                          repeats=5, warmup=1, quiet=True)
    assert lat["a"].runs == lat["b"].runs == 5
    assert calls[:4] == ["a", "b", "b", "a"]  # the order rotates every round


def test_fallback_search_finds_the_smallest_prefix_and_fails_loudly():
    ranked = [(f"n{i}", "MatMul", 1.0 - i / 10) for i in range(8)]
    built = []

    def build(exclude):
        built.append(len(exclude))
        return len(exclude)

    result = search_fallback(ranked, build, lambda k: 0.90 + 0.01 * k, 0.945)
    assert result.kept_float == ["n0", "n1", "n2", "n3", "n4"] and result.score == pytest.approx(0.95)
    assert len(built) <= 6  # bisection, not a linear scan
    with pytest.raises(AccuracyError, match="even with 8 of 8"):
        search_fallback(ranked, build, lambda k: 0.5, 0.9)


@pytest.mark.parametrize("text,arch,dot,warns", [
    ("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 fma\n", "x86_64", None, True),
    ("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: avx2 avx512f avx512_vnni\n", "x86_64", "avx512_vnni", False),
    ("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n",
     "aarch64", None, True),
    ("processor\t: 0\nFeatures\t: fp asimd asimdhp asimddp lrcpc\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n",
     "aarch64", "asimddp", False),
    ("", "armv7l", None, True),
])
def test_cpu_features_name_the_int8_dot_product(text, arch, dot, warns):
    cpu = parse_cpuinfo(text, arch)
    assert cpu.int8_dot == dot and bool(cpu.warnings()) == warns
    if "0xd08" in text:
        assert cpu.model == "Cortex-A72" and "Cortex-A72" in cpu.warnings()[0]
    assert json.dumps(cpu.to_dict())


def test_report_writes_json_and_markdown_with_the_detection_and_fallback_slots(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x" * 100)
    report = ConversionReport(title="t", source="s", cpu=parse_cpuinfo("flags: avx2\n", "x86_64"))
    report.models.append(ModelEntry("fp32", str(tmp_path / "m.onnx"), QuantScheme.FP32, 100))
    json_path, md_path = report.write(tmp_path, "m")
    data = json.loads(json_path.read_text())
    assert data["models"][0]["path"] == "m.onnx" and data["cpu"]["has_int8_dot"] is False and data["warnings"]
    md = md_path.read_text()
    assert "## Detection accuracy vs fp32" in md and "Not applicable" in md and "**Warning:**" in md
    report.detection["int8"] = DetectionMetrics(map50=0.97, count_agreement=0.9, frames=40)
    report.float_fallback["int8"] = [FallbackRow("conv_last", "Conv", 0.3, "rel_err", True)]
    md = report.to_markdown()
    assert "| int8 | 0.9700 | 0.900 | 40 |" in md and "| conv_last | Conv | 0.3 | rel_err | yes |" in md


def test_detect_cpu_on_this_machine():
    cpu = detect_cpu()
    assert cpu.arch and cpu.logical_cpus >= 1
