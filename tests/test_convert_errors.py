"""Bad input to the converters: clear EdgeRuntimeError subclasses, and never a half-written output."""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the convert extra (torch) is not installed")

from edge_runtime.assets import ensure  # noqa: E402
from edge_runtime.cli import main  # noqa: E402
from edge_runtime.converters.models.mtcnn import PNet, RNet  # noqa: E402
from edge_runtime.converters.quantize import (  # noqa: E402
    load_onnx, quantize_dynamic_int8, quantize_static_qdq, quantize_weight_only)
from edge_runtime.converters.torch_export import export_torch, load_state_dict  # noqa: E402
from edge_runtime.converters.transformer_export import convert_transformer, inspect_hf_dir  # noqa: E402
from edge_runtime.converters.verify import AccuracyError, Bound, open_session  # noqa: E402
from edge_runtime.errors import ConfigError, EdgeRuntimeError, InputError, ModelFormatError  # noqa: E402

pytestmark = pytest.mark.convert


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


class DataDependent(torch.nn.Module):
    """Python control flow on a tensor's value: torch.export cannot capture it."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1


class Noisy(torch.nn.Module):
    """Exports fine, but ONNX and PyTorch draw different random numbers: the bound cannot be met."""

    def forward(self, x):
        return x + torch.rand_like(x)


@pytest.fixture(scope="module")
def good_onnx(tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "tiny.onnx"
    torch.manual_seed(0)
    export_torch(Tiny().eval(), torch.randn(2, 4), out, n_random=0)
    return out


@pytest.fixture(params=["corrupt", "text", "empty", "truncated"])
def bad_model(request, tmp_path, good_onnx):
    path = tmp_path / "bad.onnx"
    if request.param == "corrupt":
        path.write_bytes(os.urandom(4096))
    elif request.param == "text":
        path.write_text("this is not an ONNX model\n" * 20)
    elif request.param == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(good_onnx.read_bytes()[: good_onnx.stat().st_size // 2])
    return path


def test_bad_model_files_raise_model_format_error_and_write_nothing(bad_model, tmp_path):
    with pytest.raises(ModelFormatError, match="bad.onnx"):
        load_onnx(bad_model)
    with pytest.raises(ModelFormatError, match="bad.onnx"):
        open_session(bad_model)
    for fn, kwargs in ((quantize_dynamic_int8, {}), (quantize_weight_only, {}),
                       (quantize_static_qdq, {"feeds": [{"input_0": np.zeros((1, 4), np.float32)}]})):
        dst = tmp_path / f"out-{fn.__name__}.onnx"
        with pytest.raises(ModelFormatError):
            fn(bad_model, dst, **kwargs)
        assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFormatError, match="does not exist"):
        load_onnx(tmp_path / "nope.onnx")


def test_quantizer_settings_are_checked(good_onnx, tmp_path):
    dst = tmp_path / "q.onnx"
    with pytest.raises(ConfigError, match="block_size must be a power of two >= 16, got 24"):
        quantize_weight_only(good_onnx, dst, block_size=24)
    with pytest.raises(ConfigError, match="bits must be 4 or 8"):
        quantize_weight_only(good_onnx, dst, bits=3)
    with pytest.raises(ConfigError, match="not in the model"):
        quantize_dynamic_int8(good_onnx, dst, nodes_to_exclude=["no_such_node"])
    with pytest.raises(ConfigError, match="method must be one of"):
        quantize_static_qdq(good_onnx, dst, [{"input_0": np.zeros((2, 4), np.float32)}], method="kl")
    with pytest.raises(ConfigError, match="lacks inputs"):
        quantize_static_qdq(good_onnx, dst, [{"x": np.zeros((2, 4), np.float32)}])
    with pytest.raises(ConfigError, match="calibration feeds were empty"):
        quantize_static_qdq(good_onnx, dst, [])
    with pytest.raises(InputError, match="output directory"):
        quantize_dynamic_int8(good_onnx, tmp_path / "missing-dir" / "q.onnx")
    assert not dst.exists()


def test_export_failure_is_a_model_format_error_and_leaves_no_file(tmp_path):
    out = tmp_path / "dd.onnx"
    with pytest.raises(ModelFormatError, match="DataDependent could not be exported.*torch.export"):
        export_torch(DataDependent(), torch.ones(2, 3), out)
    assert list(tmp_path.iterdir()) == []


def test_unmet_bound_is_an_accuracy_error_and_leaves_no_file(tmp_path):
    out = tmp_path / "noisy.onnx"
    with pytest.raises(AccuracyError, match=r"noisy.onnx vs PyTorch: output 'output_0': max \|err\|"):
        export_torch(Noisy(), torch.ones(2, 3), out, bound=Bound(max_abs_err=1e-4))
    assert isinstance(AccuracyError("x"), EdgeRuntimeError)
    assert list(tmp_path.iterdir()) == []


def test_weights_that_do_not_fit_the_module(tmp_path):
    out = tmp_path / "p.onnx"
    with pytest.raises(ModelFormatError, match=r"does not fit PNet: missing .*shape mismatch|does not fit PNet"):
        export_torch((ensure("mtcnn") / "rnet.pt", PNet), torch.zeros(1, 3, 24, 24), out)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFormatError, match="not a loadable PyTorch state dict"):
        load_state_dict(bad)
    with pytest.raises(ModelFormatError, match="no such weights file"):
        export_torch((tmp_path / "none.pt", RNet), torch.zeros(1, 3, 24, 24), out)
    assert not out.exists()


def test_bad_export_arguments(tmp_path):
    out = tmp_path / "t.onnx"
    with pytest.raises(InputError, match="dynamic_axes names input 'y'"):
        export_torch(Tiny(), torch.zeros(2, 4), out, dynamic_axes={"y": {0: "batch"}})
    with pytest.raises(InputError, match="axis 5 .* out of range"):
        export_torch(Tiny(), torch.zeros(2, 4), out, dynamic_axes={"input_0": {5: "batch"}})
    with pytest.raises(InputError, match="outside batch's range"):
        export_torch(Tiny(), torch.zeros(9, 4), out, dynamic_axes={"input_0": {0: ("batch", 1, 8)}})
    with pytest.raises(InputError, match="forward failed"):
        export_torch(Tiny(), torch.zeros(2, 5), out)
    with pytest.raises(InputError, match="opset"):
        export_torch(Tiny(), torch.zeros(2, 4), out, opset=7)
    assert not out.exists()


def _hf_copy(tmp_path, drop):
    src = ensure("all-minilm-l6-v2")
    dst = tmp_path / "hf"
    dst.mkdir()
    for p in src.iterdir():
        if p.is_file() and p.name not in drop:
            os.symlink(p, dst / p.name)
    return dst


@pytest.mark.parametrize("drop,message", [
    ({"config.json"}, "config.json is missing"),
    ({"model.safetensors"}, r"no \*.safetensors weights"),
    ({"tokenizer.json"}, "tokenizer.json is missing"),
])
def test_incomplete_hf_dir_names_the_missing_file(tmp_path, drop, message):
    hf = _hf_copy(tmp_path, drop)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelFormatError, match=message):
        convert_transformer(hf, out, quiet=True)
    assert list(out.iterdir()) == []


def test_corrupt_hf_config_and_weights(tmp_path):
    hf = _hf_copy(tmp_path, {"config.json", "model.safetensors"})
    (hf / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        inspect_hf_dir(hf)
    (hf / "config.json").write_text((ensure("all-minilm-l6-v2") / "config.json").read_text())
    (hf / "model.safetensors").write_bytes(os.urandom(1000))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelFormatError, match="transformers could not load the model"):
        convert_transformer(hf, out, quiet=True)
    assert list(out.iterdir()) == []


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    assert main(["convert", "transformer", str(tmp_path / "missing"), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge-runtime: error:") and "is not a directory" in err and "Traceback" not in err
    assert main(["convert", "torch", "--module", "nope", "--weights", "w.pt", "--input", "x=1x4",
                 "--out", str(tmp_path / "o.onnx")]) == 2
    assert "expected 'package.module:Class'" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()
