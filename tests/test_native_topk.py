"""top_k_rows: the sampler's candidates (llama.cpp candidate rows) == a NumPy reference exactly (ties, NaN,
sizes), and the argument checks.

Reference: stable order by (NaN last, value descending, index ascending); the first k indices, sorted.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_runtime import _native


def reference(values: np.ndarray, k: int) -> np.ndarray:
    nan = np.isnan(values)
    key = np.where(nan, 0.0, -values.astype(np.float64))
    order = np.lexsort((np.arange(values.size), key, nan))
    return np.sort(order[:k]).astype(np.int32)


ROW = np.dtype({"names": ["id", "logit", "p"], "formats": [np.int32, np.float32, np.float32],
                "offsets": [0, 4, 8], "itemsize": 12})  # llama.cpp's llama_token_data


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    rows = np.zeros(max(k, 1), ROW)
    rows["id"] = -7
    count = _native.top_k_rows(values, k, rows, 0, 4, 8)
    assert count == min(k, values.size)
    assert (rows["id"][count:] == -7).all()  # nothing written past the count
    return rows["id"][:count]


@given(hnp.arrays(np.float32, st.integers(0, 3000), elements=st.floats(-8, 8, width=32) | st.just(float("nan"))
                  | st.sampled_from([0.0, 1.0, -1.0])), st.integers(0, 200))
@settings(max_examples=300, deadline=None)
def test_matches_the_reference_on_random_values_ties_and_nan(values, k):
    assert np.array_equal(top_k(values, k), reference(values, k))


@pytest.mark.parametrize("n", [1, 63, 64, 65, 4096, 49152])
@pytest.mark.parametrize("k", [1, 40, 105, 256])
def test_vocabulary_sized_logits(n, k):
    rng = np.random.default_rng(n * 1000 + k)
    logits = (rng.standard_normal(n) * 4).astype(np.float32)
    logits[rng.integers(0, n, max(n // 50, 1))] += 15  # a few likely tokens, as a language model gives
    assert np.array_equal(top_k(logits, k), reference(logits, k))


def test_all_equal_keeps_the_lowest_indices_and_nan_comes_last():
    assert top_k(np.zeros(1000, np.float32), 5).tolist() == [0, 1, 2, 3, 4]
    values = np.full(300, np.nan, np.float32)
    values[[250, 10, 299]] = [1.0, -np.inf, 2.0]
    assert top_k(values, 4).tolist() == [0, 10, 250, 299]  # three numbers, then the first NaN


def test_bad_arguments_are_refused():
    rows = np.zeros(8, ROW)
    with pytest.raises(ValueError, match="k must be 0 .. len\\(rows\\) = 8"):
        _native.top_k_rows(np.zeros(100, np.float32), 9, rows, 0, 4, 8)
    with pytest.raises(ValueError, match="1-D"):
        _native.top_k_rows(np.zeros((10, 10), np.float32), 3, rows, 0, 4, 8)
    with pytest.raises(TypeError):
        _native.top_k_rows(np.zeros(100, np.float64), 3, rows, 0, 4, 8)  # no silent conversion


@given(hnp.arrays(np.float32, st.integers(0, 3000), elements=st.floats(-8, 8, width=32) | st.just(float("nan"))),
       st.integers(0, 120))
@settings(max_examples=150, deadline=None)
def test_candidate_rows_are_the_top_k_with_their_logits(values, k):
    rows = np.zeros(max(k, 1), ROW)
    rows["p"] = 7.0  # overwritten with 0 for each written row
    n = _native.top_k_rows(values, k, rows, 0, 4, 8)
    want = reference(values, k)
    assert n == len(want)
    np.testing.assert_array_equal(rows["id"][:n], want)
    np.testing.assert_array_equal(rows["logit"][:n], values[want])
    assert (rows["p"][:n] == 0).all() and (rows["p"][n:] == 7.0).all()


def test_candidate_rows_refuse_offsets_outside_a_row_and_too_few_rows():
    values = np.arange(10, dtype=np.float32)
    with pytest.raises(ValueError, match="field offset 9"):
        _native.top_k_rows(values, 2, np.zeros(4, ROW), 0, 4, 9)
    with pytest.raises(ValueError, match="k must be"):
        _native.top_k_rows(values, 5, np.zeros(4, ROW), 0, 4, 8)
    frozen = np.zeros(4, ROW)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _native.top_k_rows(values, 2, frozen, 0, 4, 8)
