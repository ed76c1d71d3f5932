"""The hostile-ONNX corpus (tests/fuzz/hostile_onnx/, written by tests/fuzz/make_hostile_onnx.py): every file
makes Detector raise ModelFormatError with the manifest's message, in a child process that must not crash
or hang; the face detector and the converters' session opener refuse what the file check refuses; external
data outside the model's folder is refused before anything reads it. About 15 s.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.errors import ModelFormatError
from edge_runtime.vision.detector import Detector
from edge_runtime.vision.onnx_check import check_onnx_file

FUZZ = Path(__file__).resolve().parent / "fuzz"
CORPUS = FUZZ / "hostile_onnx"
MANIFEST = json.loads((CORPUS / "MANIFEST.json").read_text())

# One child process loads every case: a crash (SIGSEGV, abort) or a hang in onnxruntime or our loader fails
# the whole test instead of killing pytest; per case it prints the error type and message as JSON.
_CHILD = r"""
import json, sys
loader = sys.argv[1]
if loader == "detector":
    from edge_runtime.vision.detector import Detector as load
elif loader == "faces":
    from edge_runtime.vision.faces import FaceDetector
    def load(path, threads):
        return FaceDetector(path, path, path, threads=threads)
else:
    from converters.verify import open_session as load
for path in sys.argv[2:]:
    try:
        load(path, threads=1)
        out = ("loaded", "")
    except Exception as exc:
        out = (type(exc).__module__ + "." + type(exc).__qualname__, str(exc))
    print(json.dumps([path, *out]), flush=True)
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    # Copied into models/ under an outer folder holding secret.bin, so "../secret.bin" would exist.
    root = tmp_path_factory.mktemp("hostile")
    models = root / "a" / "models"
    shutil.copytree(CORPUS, models)
    (root / "a" / "secret.bin").write_bytes(np.arange(504, dtype=np.float32).tobytes())
    return models


def _load_all(corpus: Path, loader: str) -> dict:
    names = sorted(MANIFEST)
    done = subprocess.run([sys.executable, "-c", _CHILD, loader, *(str(corpus / n) for n in names)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the {loader} loader crashed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == len(names), f"the {loader} loader stopped early:\n{done.stderr[-3000:]}"
    return {Path(path).name: (kind, message) for path, kind, message in rows}


@pytest.fixture(scope="module")
def outcomes(corpus) -> dict:
    return _load_all(corpus, "detector")


def test_the_corpus_is_what_the_script_writes():
    done = subprocess.run([sys.executable, str(FUZZ / "make_hostile_onnx.py"), "--check"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_hostile_model_is_refused(outcomes, name):
    kind, message = outcomes[name]
    assert kind == "edge_runtime.errors.ModelFormatError", (name, kind, message)
    assert name in message  # names the file
    assert re.search(MANIFEST[name]["match"], message), (name, message)


@pytest.mark.parametrize("loader", ["faces", "session"])
def test_other_onnx_loaders_refuse_the_corpus(corpus, loader):
    """The face detector and the converters' session opener (which loads the exported LLM and the models
    being verified) run the same file check first: every file the check refuses is refused with its
    message, nothing crashes; the face detector refuses the rest too (no corpus model is MTCNN). The
    generic opener may load a well-formed model that only a detector would refuse."""
    got = _load_all(corpus, loader)
    for name in sorted(MANIFEST):
        kind, message = got[name]
        try:
            check_onnx_file(corpus / name)
            refused_by_check = None
        except ModelFormatError as exc:
            refused_by_check = str(exc)
        if refused_by_check is not None:
            assert (kind, message.endswith(refused_by_check) or refused_by_check in message) == \
                ("edge_runtime.errors.ModelFormatError", True), (loader, name, kind, message, refused_by_check)
        elif loader == "faces":
            assert kind == "edge_runtime.errors.ModelFormatError", (name, kind, message)
        else:
            assert kind in ("loaded", "edge_runtime.errors.ModelFormatError"), (name, kind, message)


def _external_model(folder: Path, location: str) -> Path:
    """The corpus's valid-but-external detector, pointing at `location` (made by the corpus script)."""
    sys.path.insert(0, str(FUZZ))
    try:
        import make_hostile_onnx
    finally:
        sys.path.remove(str(FUZZ))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(make_hostile_onnx.serialized(make_hostile_onnx.external(location)))
    return path


def _weights(path: Path) -> Path:
    path.write_bytes(np.arange(504, dtype=np.float32).tobytes())  # exactly the (1, 6, 84) initializer
    return path


def test_the_external_model_loads_when_its_data_is_inside(tmp_path):
    """The control: with the data beside it, the same model loads, so a refusal below is about the path."""
    (tmp_path / "m").mkdir()
    _weights(tmp_path / "m" / "weights.bin")
    det = Detector(_external_model(tmp_path / "m", "weights.bin"), threads=1)
    assert det.input_hw == (64, 64) and len(det.class_names) == 2


@pytest.mark.parametrize("location, message", [
    ("../outside.bin", "climbs out"),
    ("link.bin", "outside the model's folder"),  # a symlink to ../outside.bin
    ("dir/outside.bin", "outside the model's folder"),  # a symlinked folder
    (None, "is absolute"),  # the absolute path of outside.bin
])
def test_external_data_outside_the_folder_is_never_read(tmp_path, location, message):
    """Valid weights wait outside the folder; the model is refused by our check before onnxruntime runs."""
    outside = _weights(tmp_path / "outside.bin")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "link.bin").symlink_to(outside)
    (folder / "dir").symlink_to(tmp_path)
    path = _external_model(folder, location or str(outside))
    with pytest.raises(ModelFormatError, match=message):
        check_onnx_file(path)
    with pytest.raises(ModelFormatError, match=message):
        Detector(path, threads=1)  # our message, not onnxruntime's: refused before it opened anything
