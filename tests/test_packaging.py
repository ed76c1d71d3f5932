"""What the package declares: one version, a light device install, the bounds its code relies on."""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

import edge_runtime

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def test_one_version_source():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert md.version("edge-runtime") == edge_runtime.__version__


def test_device_install_is_light_and_toml_works_on_old_pythons():
    deps = PYPROJECT["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in deps}
    assert names == {"numpy", "onnx", "onnxruntime", "opencv-python-headless", "tomli"}
    assert any(d.startswith("tomli") and "python_version < '3.11'" in d for d in deps)


def test_llama_cpp_python_is_bounded_while_chat_uses_its_internals():
    llm = PYPROJECT["project"]["optional-dependencies"]["llm"]
    spec = next(d for d in llm if d.startswith("llama-cpp-python"))
    assert "<0.4" in spec
    chat = (Path(edge_runtime.__file__).parent / "llm" / "chat.py").read_text()
    assert "._ctx.ctx" in chat  # the reason for the bound; drop the bound with it
