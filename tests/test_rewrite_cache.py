"""The rewritten detector model kept on disk (edge_runtime/vision/rewrite_cache.py): written on the first
load, loaded as a file afterwards (no parse in the process), checked against the sha256 in its name, and
every failure a logged recovery with the same detections as before."""

from __future__ import annotations

import logging
import os
import stat

import cv2
import numpy as np
import pytest

from edge_runtime.assets import ensure
from edge_runtime.vision import detector as detector_module
from edge_runtime.vision import rewrite_cache
from edge_runtime.vision.detector import Detector


@pytest.fixture(scope="module")
def model_path():
    return ensure("yolov8s-person")


@pytest.fixture(scope="module")
def frame():
    capture = cv2.VideoCapture(str(ensure("vtest-video")))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 200)
    ok, image = capture.read()
    capture.release()
    assert ok
    return image


@pytest.fixture
def cache(tmp_path, monkeypatch, model_path):
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path))
    return tmp_path / "rewritten"


def _no_rewrite(monkeypatch):
    calls = []

    def refuse(path, data):
        calls.append(path)
        raise AssertionError("the model was rewritten in the process although a cached copy exists")

    monkeypatch.setattr(detector_module, "_with_fast_dfl", refuse)
    return calls


def _same(a, b):
    assert len(a) == len(b) > 3
    assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.score, b.score)


def test_the_first_load_keeps_the_rewrite_and_later_loads_use_it(cache, model_path, frame, monkeypatch):
    first = Detector(model_path, threads=1, cache_rewrite=True)
    (kept,) = cache.glob("*.onnx")
    assert kept.name.startswith("best_fp16.") and "-dfl1." in kept.name
    assert stat.S_IMODE(kept.stat().st_mode) == 0o644 and not list(cache.glob(".partial-*"))
    assert rewrite_cache.has_entry(model_path)
    _no_rewrite(monkeypatch)
    second = Detector(model_path, threads=1, cache_rewrite=True)
    _same(first(frame), second(frame))


def test_a_cached_file_that_does_not_match_its_checksum_is_deleted_and_rebuilt(cache, model_path, frame, caplog):
    reference = Detector(model_path, threads=1, cache_rewrite=True)(frame)
    (kept,) = cache.glob("*.onnx")
    data = bytearray(kept.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit flip in the weights: it would still load, wrong
    kept.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="edge_runtime.vision.rewrite_cache"):
        again = Detector(model_path, threads=1, cache_rewrite=True)(frame)
    assert "does not match its checksum" in caplog.text
    _same(reference, again)
    (rebuilt,) = cache.glob("*.onnx")
    assert rebuilt.read_bytes() != bytes(data)


def test_a_cached_file_that_does_not_load_is_deleted_and_rebuilt(cache, model_path, frame, caplog):
    reference = Detector(model_path, threads=1, cache_rewrite=True)(frame)
    (kept,) = cache.glob("*.onnx")
    good = kept.read_bytes()
    import hashlib

    garbage = b"\x08\x07 not a model" * 64
    bad = kept.with_name(kept.name.rsplit(".", 2)[0] + f".{hashlib.sha256(garbage).hexdigest()[:24]}.onnx")
    kept.unlink()
    bad.write_bytes(garbage)  # hashes to its name, but onnxruntime refuses it
    with caplog.at_level(logging.WARNING, logger="edge_runtime.vision.detector"):
        again = Detector(model_path, threads=1, cache_rewrite=True)(frame)
    assert "cached rewritten model did not load" in caplog.text
    _same(reference, again)
    assert not bad.exists() and [p.read_bytes() == good for p in cache.glob("*.onnx")] == [True]


def test_an_unwritable_cache_costs_only_the_rewrite_at_every_start(tmp_path, monkeypatch, model_path, frame, caplog):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(blocked))
    with caplog.at_level(logging.INFO, logger="edge_runtime.vision.rewrite_cache"):
        detections = Detector(model_path, threads=1, cache_rewrite=True)(frame)
    assert "could not keep the rewritten model" in caplog.text and "rewritten at every start" in caplog.text
    assert len(detections) > 3 and not rewrite_cache.has_entry(model_path)


def test_a_model_the_rewrite_leaves_alone_is_not_parsed_again(cache, tmp_path, monkeypatch):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "no-dfl",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "plain.onnx"
    path.write_bytes(model.SerializeToString())
    assert detector_module._with_fast_dfl(path, None) is None
    assert rewrite_cache.store(path, None) is not None
    assert rewrite_cache.lookup(path) == (None, True) and rewrite_cache.has_entry(path)
    model.graph.node[0].op_type = "Sigmoid"  # another model at that path: another key
    path.write_bytes(model.SerializeToString())
    os.utime(path, ns=(1, 1))
    assert rewrite_cache.lookup(path) == (None, False) and not rewrite_cache.has_entry(path)


def test_the_memory_estimate_counts_the_cached_model_as_a_file_load(cache, model_path):
    from edge_runtime.runtime.config import default_config
    from edge_runtime.runtime.memory import DETECTOR_WEIGHT_FACTOR, DETECTOR_WEIGHT_FACTOR_CACHED, estimate_memory

    size = model_path.stat().st_size
    before = estimate_memory(default_config())
    assert before.detector_weight_bytes == int(size * DETECTOR_WEIGHT_FACTOR)
    Detector(model_path, threads=1, cache_rewrite=True)  # as a job builds it
    after = estimate_memory(default_config())
    assert after.detector_weight_bytes == int(size * DETECTOR_WEIGHT_FACTOR_CACHED)
    assert "rewritten model cached" in after.notes["detector"]


def test_the_cache_keeps_only_the_most_recently_written_entries(cache, tmp_path):
    from onnx import TensorProto, helper

    paths = []
    for k in range(rewrite_cache.MAX_ENTRIES + 3):
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], f"g{k}",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k + 1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, k + 1])])
        path = tmp_path / f"m{k}.onnx"
        path.write_bytes(helper.make_model(graph).SerializeToString())
        kept = rewrite_cache.store(path, None if k % 2 else path.read_bytes())
        os.utime(kept, ns=(k * 10**9, k * 10**9))  # written one after the other
        paths.append(path)
    assert len(list(cache.iterdir())) == rewrite_cache.MAX_ENTRIES
    assert [rewrite_cache.has_entry(p) for p in paths] == [False] * 3 + [True] * rewrite_cache.MAX_ENTRIES


def test_a_detector_keeps_nothing_unless_asked(tmp_path, monkeypatch, model_path):
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path))
    Detector(model_path, threads=1)
    assert not (tmp_path / "rewritten").exists()
