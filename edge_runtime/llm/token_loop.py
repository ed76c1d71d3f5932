"""The per-token decode loop over a llama-cpp-python ``Llama``, without its Python generate loop.

``Llama.generate`` evaluates each new token through ``Llama.eval`` (which copies the logits row into a
NumPy array) and samples with a sampler chain that scores the whole vocabulary (49 152 entries for
SmolLM2) on every token: about 0.2 ms of a 12 ms token on a Pi-class core, where the model call itself
is what llama-bench measures. Here each generated token is decoded with one ``llama_decode`` on the
context's own one-token batch, and picked either by argmax (greedy) or by llama.cpp's own sampler chain,
built as ``Llama.generate`` builds it, applied to the few candidates that can win instead of the whole
vocabulary (see :class:`CandidateSampler`): the same tokens for the same seed, for a fraction of the cost.

``input_ids`` / ``n_tokens`` are kept as ``Llama.eval`` keeps them, so later calls (``generate``, the KV
prefix reuse) see the same state.
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable, Iterator, Sequence

import numpy as np

__all__ = ["greedy_tokens", "sampled_tokens", "CandidateSampler", "MAX_CANDIDATES"]

#: Most candidates the sampler hands to llama.cpp's chain: top_k + the penalty window + 1.
MAX_CANDIDATES = 256


def _decode_loop(llama_cpp: Any, llm: Any, tokens: Sequence[int], pick: Callable[[np.ndarray], int]
                 ) -> Iterator[int]:
    """Evaluate ``tokens`` (reusing the prefix the context already holds), then yield ``pick(logits)``
    and decode it, forever (the caller stops). ``logits`` is a (n_vocab,) float32 view of llama.cpp's
    buffer, valid until the next decode.

    Raises:
        RuntimeError: llama_decode failed (as ``Llama.eval`` raises it), e.g. the context is full.
    """
    held = llm.input_ids[: llm.n_tokens]
    keep = 0
    for a, b in zip(held, tokens[:-1]):  # at least one prompt token is evaluated, for fresh logits
        if a != b:
            break
        keep += 1
    llm.n_tokens = keep
    llm.eval(tokens[keep:])
    ctx, n_vocab = llm._ctx.ctx, llm.n_vocab()
    batch = llm._batch.batch
    view, view_addr = None, None
    while True:
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        addr = ctypes.addressof(ptr.contents)
        if addr != view_addr:  # the logits buffer moves only when llama.cpp reallocates it
            view, view_addr = np.ctypeslib.as_array(ptr, shape=(n_vocab,)), addr
        token = pick(view)
        yield token
        n_past = llm.n_tokens
        batch.n_tokens = 1
        batch.token[0] = token
        batch.pos[0] = n_past
        batch.n_seq_id[0] = 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = True
        code = llama_cpp.llama_decode(ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        llm.input_ids[n_past] = token
        llm.n_tokens = n_past + 1


def greedy_tokens(llama_cpp: Any, llm: Any, tokens: Sequence[int]) -> Iterator[int]:
    """Greedy decoding: argmax over the last logits row, the first maximum on a tie (as llama.cpp's
    greedy sampler). The same tokens as ``Llama.generate`` at temperature 0 with no repeat penalty."""
    return _decode_loop(llama_cpp, llm, tokens, lambda logits: int(logits.argmax()))


class CandidateSampler:
    """llama.cpp's sampler chain as ``Llama.generate`` builds it (repeat penalty over the last
    ``penalty_last_n`` sampled tokens, top-k, typical 1.0, top-p, min-p, temperature, a seeded draw),
    applied to the top ``top_k + penalty_last_n + 1`` logits only.

    Why that is the same draw: a repeat penalty >= 1 only lowers logits, and only of the tokens in the
    window (at most ``penalty_last_n``), so any token the chain's top-k keeps after the penalty is among
    the top ``top_k + penalty_last_n`` before it; the chain's top-k then sorts and cuts the candidates to
    the same k (the one extra candidate makes sure it does cut, as it does over the whole vocabulary), and
    every later step sees only those k. The native ``top_k_rows`` picks the candidates (one vectorised
    pass over the vocabulary) and writes them straight into the chain's candidate array: the host does
    this while llama.cpp's worker threads wait, so it is kept to one call. Ties at the cut may be broken
    differently than over the whole vocabulary (either is a valid draw).

    Use :meth:`supports` first; the chain is freed by :meth:`close`.
    """

    _chain: Any = None

    def __init__(self, llama_cpp: Any, native: Any, n_vocab: int, *, top_k: int, top_p: float, min_p: float,
                 temperature: float, repeat_penalty: float, penalty_last_n: int, seed: int) -> None:
        if not self.supports(top_k=top_k, temperature=temperature, repeat_penalty=repeat_penalty,
                             penalty_last_n=penalty_last_n):
            raise ValueError("CandidateSampler: unsupported settings (check supports() first)")
        self._lib, self._top_k_rows = llama_cpp, native.top_k_rows
        self._k = int(top_k) + int(penalty_last_n) + 1
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        penalties = llama_cpp.llama_sampler_init_penalties(n_vocab, int(penalty_last_n), repeat_penalty, 0.0, 0.0)
        for sampler in (penalties,
                        llama_cpp.llama_sampler_init_top_k(int(top_k)),
                        llama_cpp.llama_sampler_init_typical(1.0, 1),
                        llama_cpp.llama_sampler_init_top_p(top_p, 1),
                        llama_cpp.llama_sampler_init_min_p(min_p, 1),
                        llama_cpp.llama_sampler_init_temp(temperature),
                        llama_cpp.llama_sampler_init_dist(seed)):
            llama_cpp.llama_sampler_chain_add(chain, sampler)
        self._chain = chain
        self._data = (llama_cpp.llama_token_data * MAX_CANDIDATES)()
        fields = np.dtype({"names": ["id", "logit", "p"], "formats": [np.int32, np.float32, np.float32],
                           "offsets": [llama_cpp.llama_token_data.id.offset, llama_cpp.llama_token_data.logit.offset,
                                       llama_cpp.llama_token_data.p.offset],
                           "itemsize": ctypes.sizeof(llama_cpp.llama_token_data)})
        self._rows = np.frombuffer(self._data, dtype=fields)
        self._offsets = (llama_cpp.llama_token_data.id.offset, llama_cpp.llama_token_data.logit.offset,
                         llama_cpp.llama_token_data.p.offset)
        self._array = llama_cpp.llama_token_data_array(
            ctypes.cast(self._data, llama_cpp.llama_token_data_p), 0, -1, False)
        self._array_p = ctypes.pointer(self._array)

    @staticmethod
    def supports(*, top_k: int, temperature: float, repeat_penalty: float, penalty_last_n: int) -> bool:
        """Settings for which the candidates give the same draw as the whole vocabulary: a real top-k
        that leaves room for the penalty window, temperature > 0, and a penalty that only lowers."""
        return (temperature > 0.0 and repeat_penalty >= 1.0 and 0 <= penalty_last_n
                and 1 <= top_k and top_k + penalty_last_n + 1 <= MAX_CANDIDATES)

    def __call__(self, logits: np.ndarray) -> int:
        n = self._top_k_rows(logits, self._k, self._rows, *self._offsets)
        array = self._array
        array.size, array.selected, array.sorted = n, -1, False
        self._lib.llama_sampler_apply(self._chain, self._array_p)
        selected = array.selected
        if not 0 <= selected < n:
            raise RuntimeError(f"llama.cpp's sampler chain selected {selected} of {n} candidates")
        token = int(self._rows[selected]["id"])
        self._lib.llama_sampler_accept(self._chain, token)
        return token

    def close(self) -> None:
        if self._chain is not None:
            self._lib.llama_sampler_free(self._chain)
            self._chain = None

    def __del__(self) -> None:
        self.close()


def sampled_tokens(llama_cpp: Any, llm: Any, tokens: Sequence[int], sampler: CandidateSampler) -> Iterator[int]:
    """Sampled decoding with ``sampler`` (closed when the generator is)."""
    try:
        yield from _decode_loop(llama_cpp, llm, tokens, sampler)
    finally:
        sampler.close()
