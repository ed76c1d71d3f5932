"""Chat over the real SmolLM2-135M-Instruct GGUF: answers, template parity with llama-cpp-python,
context trimming, cancellation, the between-tokens hook, locking, stop strings, errors, the CLI."""

from __future__ import annotations

import io
import sys
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime.errors import BackendUnavailableError, InputError, ModelFormatError
from edge_runtime.llm.chat import Chat, FinishReason, SamplingParams, _StopMatcher, normalize_messages

pytestmark = [pytest.mark.llm, pytest.mark.slow]

FRANCE = "What is the capital of France?"
N_CTX = 512


@pytest.fixture(scope="module")
def model_path():
    from edge_runtime.assets import ensure

    return ensure("smollm2-135m")


@pytest.fixture(scope="module")
def chat(model_path):
    # One thread: the test machine's cores are shared; greedy decoding for assertions on content.
    with Chat(model_path, n_threads=1, n_ctx=N_CTX, temperature=0.0, max_tokens=24, seed=0) as c:
        yield c


def user(text):
    return {"role": "user", "content": text}


# --------------------------------------------------------------------------------- real answers


def test_answers_a_fact_and_reports_stats(chat):
    answer = chat.ask(FRANCE, max_tokens=32)
    assert "Paris" in answer
    s = chat.last_stats
    assert s.prompt_tokens == chat.count_tokens(FRANCE)
    assert 0 < s.completion_tokens <= 32
    assert s.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert 0 < s.ttft_s <= s.elapsed_s
    assert s.tokens_per_s > 0
    assert s.as_dict()["finish_reason"] == s.finish_reason.value


def test_greedy_output_matches_llama_cpp_chat_completion(chat, model_path):
    # Same template, same tokens, same greedy decode as llama-cpp-python's own chat path.
    import llama_cpp

    messages = [{"role": "system", "content": "You answer briefly."}, user("What is the capital of Japan?")]
    ref_llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=N_CTX, n_threads=1, flash_attn=True, verbose=False)
    try:
        ref = ref_llm.create_chat_completion(messages, temperature=0.0, max_tokens=20, repeat_penalty=1.0)
    finally:
        ref_llm.close()
    ours = chat.ask(messages, max_tokens=20, repeat_penalty=1.0)
    assert "Tokyo" in ours
    assert ours == ref["choices"][0]["message"]["content"]
    assert chat.last_stats.prompt_tokens == ref["usage"]["prompt_tokens"]
    assert chat.last_stats.completion_tokens == ref["usage"]["completion_tokens"]


def test_greedy_fast_path_matches_llama_cpp_over_turns_that_reuse_the_cache(chat, model_path):
    # Our greedy loop decodes on the context directly; the second turn extends the first, so it also
    # reuses the KV prefix the first turn left: the bookkeeping must match llama-cpp-python's own.
    import llama_cpp

    first = [{"role": "system", "content": "You are a storyteller."}, user("Tell a story about a duck barn.")]
    ref_llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=N_CTX, n_threads=1, flash_attn=True, verbose=False)
    try:
        answers = []
        for extra in ([], [None, user("And what happened the next morning?")]):
            messages = first + ([{"role": "assistant", "content": answers[0]}, extra[1]] if extra else [])
            ref = ref_llm.create_chat_completion(messages, temperature=0.0, max_tokens=60, repeat_penalty=1.0)
            ours = chat.ask(messages, max_tokens=60, repeat_penalty=1.0)
            assert ours == ref["choices"][0]["message"]["content"]
            assert chat.last_stats.completion_tokens == ref["usage"]["completion_tokens"]
            answers.append(ours)
    finally:
        ref_llm.close()
    assert len(answers[0]) > 100 and answers[1] != answers[0]


@pytest.mark.parametrize("settings", [
    {"temperature": 0.7, "repeat_penalty": 1.1, "top_k": 40, "top_p": 0.95, "min_p": 0.05},  # the CLI's defaults
    {"temperature": 1.2, "repeat_penalty": 1.3, "top_k": 20, "top_p": 0.8, "min_p": 0.0},
])
def test_sampled_path_draws_the_same_tokens_as_llama_cpp_for_the_same_seed(chat, model_path, settings):
    # Our sampled loop hands llama.cpp's sampler chain only the candidates that can win; with the same seed
    # every draw must be the one llama-cpp-python's own chat path makes over the whole vocabulary, across a
    # second turn that reuses the first's KV prefix and penalty-window bookkeeping.
    import llama_cpp

    from edge_runtime.llm.token_loop import CandidateSampler

    assert CandidateSampler.supports(top_k=settings["top_k"], temperature=settings["temperature"],
                                     repeat_penalty=settings["repeat_penalty"], penalty_last_n=64)
    first = [{"role": "system", "content": "You are a storyteller."}, user("Tell a story about a duck barn.")]
    ref_llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=N_CTX, n_threads=1, flash_attn=True, verbose=False)
    try:
        for seed in (0, 1, 99):
            answers = []
            for turn in range(2):
                messages = first if turn == 0 else first + [{"role": "assistant", "content": answers[0]},
                                                            user("And the next morning?")]
                ref = ref_llm.create_chat_completion(messages, max_tokens=60, seed=seed, **settings)
                ours = chat.ask(messages, max_tokens=60, seed=seed, **settings)
                assert ours == ref["choices"][0]["message"]["content"], (seed, turn)
                answers.append(ours)
            assert len(answers[0]) > 50
    finally:
        ref_llm.close()


def test_stream_pieces_join_to_the_ask_answer(chat):
    pieces = list(chat.stream("What is 2+2?"))
    assert len(pieces) > 1 and all(pieces)
    assert "4" in "".join(pieces)
    assert "".join(pieces) == chat.ask("What is 2+2?")


def test_history_reaches_the_model(chat):
    with_history = [user("My name is Alice."), {"role": "assistant", "content": "Nice to meet you, Alice!"},
                    user("What is my name?")]
    assert "Alice" in chat.ask(with_history)
    assert "Alice" not in chat.ask([user("What is my name?")])


def test_same_seed_same_sample_at_temperature(chat):
    a = chat.ask(FRANCE, temperature=0.9, seed=7, max_tokens=12)
    b = chat.ask(FRANCE, temperature=0.9, seed=7, max_tokens=12)
    assert a == b


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads glibc's mallinfo2 (Linux)")
def test_sampled_generations_do_not_accumulate_native_memory(chat):
    """Each sampled generation builds a llama.cpp sampler chain (a candidate array of the whole vocabulary,
    about 0.6 MB here); it must be freed when the generation ends, not when a full garbage collection
    happens to run (the soak saw the process grow by that)."""
    import ctypes
    import gc

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("the C library has no mallinfo2 (glibc < 2.33 or not glibc)")
    libc.mallinfo2.restype = MallInfo2
    for i in range(3):
        chat.ask(FRANCE, temperature=0.9, seed=i, max_tokens=4)
    gc.collect()
    gc.disable()  # what a long-running process sees between its rare full collections
    try:
        before = libc.mallinfo2().uordblks
        for i in range(20):
            chat.ask(FRANCE, temperature=0.9, seed=i, max_tokens=4)
        grown = libc.mallinfo2().uordblks - before
    finally:
        gc.enable()
    assert grown < 2 << 20, f"20 sampled answers left {grown / 2**20:.1f} MB allocated"


def test_stop_string_ends_generation_and_is_not_emitted(chat):
    full = chat.ask(FRANCE, max_tokens=32)
    cut = chat.ask(FRANCE, max_tokens=32, stop=["Paris"])
    assert "Paris" in full and "Paris" not in cut
    assert full.startswith(cut)
    assert chat.last_stats.finish_reason is FinishReason.STOP


def test_max_tokens_gives_length(chat):
    chat.ask("Write a long story about a dragon.", max_tokens=5)
    assert chat.last_stats.completion_tokens == 5
    assert chat.last_stats.finish_reason is FinishReason.LENGTH


# ------------------------------------------------------------------------------- context window


def _long_conversation(turns):
    msgs = [{"role": "system", "content": "You are a concise assistant."}]
    for i in range(turns):
        msgs.append(user(f"Question {i}: tell me a fact about the number {i}."))
        msgs.append({"role": "assistant", "content": f"The number {i} is an integer that follows {i - 1}."})
    return msgs + [user("What is the capital of France?")]


def test_fit_drops_oldest_turns_keeps_system_and_last(chat):
    msgs = _long_conversation(40)
    max_tokens = 200
    kept, tokens, dropped = chat.fit(msgs, max_tokens)
    assert dropped > 0 and len(kept) == len(msgs) - dropped
    assert len(tokens) <= N_CTX - max_tokens
    assert len(tokens) == chat.count_tokens(kept)
    assert kept[0] == msgs[0] and kept[-1] == msgs[-1]
    assert kept[1]["role"] == "user"
    assert kept[1:] == msgs[len(msgs) - len(kept) + 1:]  # a suffix of the conversation
    # Minimal: keeping one more user/assistant pair would not fit.
    one_more = [msgs[0]] + msgs[len(msgs) - len(kept) - 1:]
    assert chat.count_tokens(one_more) > N_CTX - max_tokens


def test_fit_leaves_short_conversations_alone(chat):
    msgs = _long_conversation(2)
    kept, tokens, dropped = chat.fit(msgs, 24)
    assert kept == msgs and dropped == 0 and len(tokens) == chat.count_tokens(msgs)


def test_generation_on_a_trimmed_conversation(chat):
    # Room for 440 answer tokens leaves 72 for the prompt: most of the conversation must go.
    stream = chat.stream(_long_conversation(40), max_tokens=440)
    text = ""
    for piece in stream:
        text += piece
        if "Paris" in text:
            break
    stream.close()
    assert "Paris" in text
    assert stream.stats.dropped_messages > 70
    assert stream.stats.prompt_tokens + 440 <= N_CTX
    assert stream.messages[0]["role"] == "system" and stream.messages[-1]["content"] == FRANCE


def test_prompt_that_cannot_fit_is_an_input_error(chat):
    with pytest.raises(InputError, match="n_ctx=512"):
        chat.stream("word " * 600)
    with pytest.raises(InputError, match="max_tokens"):
        chat.stream(FRANCE, max_tokens=N_CTX)


# ------------------------------------------------------------------- cancellation, hook, locking


def test_between_tokens_runs_after_every_token_but_the_last(chat):
    calls = []
    stream = chat.stream("Write a long story about a dragon.", max_tokens=8,
                         between_tokens=lambda: calls.append(stream.stats.completion_tokens))
    "".join(stream)
    assert stream.stats.completion_tokens == 8
    assert [c for c in calls if c > 0] == [1, 2, 3, 4, 5, 6, 7]  # after each token but the last
    assert all(c == 0 for c in calls[:len(calls) - 7])  # the rest came during the prompt, before any token


def test_a_long_prompt_gives_way_every_few_tokens_and_answers_the_same(chat):
    """With a hook, the prompt is evaluated PREFILL_CHUNK tokens at a time and the hook runs between the
    chunks (a due camera frame need not wait for a whole grounded prompt); the answer is unchanged."""
    from edge_runtime.llm.chat import PREFILL_CHUNK

    facts = " ".join(f"Line {k} counted {k * 7 % 13} people going in." for k in range(30))
    question = [user(f"Facts: {facts} Question: how many went in at line 3?")]
    plain = chat.ask(question, max_tokens=12)
    prompt_tokens = chat.last_stats.prompt_tokens
    chat.ask("Reset the cache with something else.", max_tokens=1)
    calls = []
    stream = chat.stream(question, max_tokens=12, between_tokens=lambda: calls.append(stream.stats.completion_tokens))
    hooked = "".join(stream)
    during_prompt = sum(c == 0 for c in calls)
    # The shared chat-template prefix may be reused from the cache; the question's own tokens may not.
    assert prompt_tokens > 300
    assert during_prompt >= (prompt_tokens - 60) // PREFILL_CHUNK
    assert during_prompt <= -(-prompt_tokens // PREFILL_CHUNK)
    assert hooked == plain


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_cancel_stops_within_one_token(chat, kind):
    event = threading.Event()
    calls = []

    def hook():
        calls.append(1)
        if stream.stats.completion_tokens == 5:
            event.set()

    cancel = event if kind == "event" else event.is_set
    stream = chat.stream("Write a long story about a dragon.", max_tokens=200, cancel=cancel, between_tokens=hook)
    text = "".join(stream)
    assert stream.stats.finish_reason is FinishReason.CANCELLED
    assert stream.stats.completion_tokens == 5
    assert text and chat.last_stats is stream.stats


def test_cancel_while_the_prompt_is_evaluated(chat):
    event = threading.Event()
    facts = " ".join(f"Gate {k} saw {k * 3 % 11} cars." for k in range(40))
    stream = chat.stream(f"{facts} Which gate was busiest?", max_tokens=50, cancel=event,
                         between_tokens=event.set)  # the first prompt chunk's hook cancels
    assert "".join(stream) == ""
    assert stream.stats.finish_reason is FinishReason.CANCELLED and stream.stats.completion_tokens == 0
    assert chat.ask(FRANCE, max_tokens=8)  # the model is usable at once


def test_closing_a_stream_early_releases_the_model(chat):
    stream = chat.stream("Write a long story about a dragon.", max_tokens=200)
    next(stream)
    stream.close()
    assert stream.stats.finish_reason is FinishReason.CANCELLED
    assert stream.stats.completion_tokens <= 2
    assert "Paris" in chat.ask(FRANCE, max_tokens=16)  # the lock was released


def test_one_generation_at_a_time_and_no_crosstalk(chat):
    prompts = [FRANCE, "What is the capital of Japan?"]
    serial = [chat.ask(p, max_tokens=12) for p in prompts]
    spans, answers = {}, {}

    def run(i):
        stream = chat.stream(prompts[i], max_tokens=12)
        pieces = []
        for piece in stream:
            spans.setdefault(i, [time.perf_counter(), 0.0])
            pieces.append(piece)
        spans[i][1] = time.perf_counter()
        answers[i] = "".join(pieces)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [answers[0], answers[1]] == serial
    (a0, a1), (b0, b1) = spans[0], spans[1]
    assert a1 <= b0 or b1 <= a0  # the token streams did not interleave


def test_a_waiter_that_is_cancelled_gives_up_without_generating(chat):
    first = chat.stream("Write a long story about a dragon.", max_tokens=200)
    next(first)  # now holds the model
    try:
        event = threading.Event()
        event.set()
        waiter = chat.stream(FRANCE, cancel=event)
        t0 = time.perf_counter()
        assert list(waiter) == []
        assert time.perf_counter() - t0 < 2.0
        assert waiter.stats.finish_reason is FinishReason.CANCELLED
        assert waiter.stats.completion_tokens == 0
    finally:
        first.close()


# ----------------------------------------------------------------------------- stop-string logic


def _reference_cut(text, stops):
    hits = [text.find(s) for s in stops if s in text]
    return (text[: min(hits)], True) if hits else (text, False)


@given(text=st.text(alphabet="ab<|>x", max_size=40),
       stops=st.lists(st.text(alphabet="ab<|>", min_size=1, max_size=5), max_size=3),
       cuts=st.lists(st.integers(0, 40), max_size=10))
def test_stop_matcher_matches_reference_for_any_chunking(text, stops, cuts):
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    matcher, out, hit = _StopMatcher(stops), [], False
    for chunk in chunks:
        piece, hit = matcher.feed(chunk)
        out.append(piece)
        if hit:
            break
    if not hit:
        out.append(matcher.flush())
    expected, expected_hit = _reference_cut(text, stops)
    assert "".join(out) == expected
    assert hit == expected_hit


# ---------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("field,value", [
    ("temperature", -0.1), ("temperature", 2.5), ("temperature", float("nan")), ("top_p", 0.0),
    ("top_k", -1), ("min_p", 1.5), ("repeat_penalty", 0.0), ("max_tokens", 0), ("max_tokens", 1.5),
    ("seed", -1), ("seed", 1 << 32), ("stop", [""]), ("stop", ["a"] * 9), ("temperature", True),
])
def test_sampling_params_name_the_bad_field(field, value):
    with pytest.raises(InputError, match=field):
        SamplingParams(**{field: value})


def test_unknown_sampling_override_is_rejected(chat):
    with pytest.raises(InputError, match="unknown"):
        chat.stream(FRANCE, temprature=0.5)


@pytest.mark.parametrize("messages,match", [
    ([], "empty"),
    ({"role": "user", "content": "hi"}, "list"),
    ([{"role": "wizard", "content": "hi"}], r"messages\[0\]\.role"),
    ([{"role": "user", "content": 3}], r"messages\[0\]\.content"),
    ([{"role": "user"}], r"messages\[0\]\.content"),
    (["hi"], r"messages\[0\]"),
    ([user("hi"), {"role": "assistant", "content": "hello"}], "last message"),
])
def test_malformed_messages_are_input_errors(messages, match):
    with pytest.raises(InputError, match=match):
        normalize_messages(messages)


def test_missing_and_non_gguf_files_are_model_format_errors(tmp_path):
    with pytest.raises(ModelFormatError, match="no such"):
        Chat(tmp_path / "absent.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all" * 100)
    with pytest.raises(ModelFormatError):
        Chat(junk)


def test_truncated_gguf_is_a_model_format_error(tmp_path, model_path):
    cut = tmp_path / "cut.gguf"
    with open(model_path, "rb") as f:
        cut.write_bytes(f.read(1 << 20))
    with pytest.raises(ModelFormatError):
        Chat(cut, n_threads=1, n_ctx=128)


def _tiny_gguf(path, template):
    """A weightless GGUF: enough metadata for the checks made before llama.cpp sees the file."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128)
    w.add_token_list(["<s>", "</s>", "a"])
    w.add_eos_token_id(1)
    if template is not None:
        w.add_chat_template(template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_model_checks_happen_before_weights_load(tmp_path):
    from edge_runtime.errors import ConfigError

    base = _tiny_gguf(tmp_path / "base.gguf", None)
    with pytest.raises(ModelFormatError, match="no chat template"):
        Chat(base, n_ctx=64)
    broken = _tiny_gguf(tmp_path / "broken.gguf", "{% for m in messages %}{{ m.content }}")
    with pytest.raises(ModelFormatError, match="does not parse"):
        Chat(broken, n_ctx=64)
    ok = _tiny_gguf(tmp_path / "ok.gguf", "{% for m in messages %}{{ m.content }}{% endfor %}")
    with pytest.raises(ConfigError, match=r"trained on \(128\)"):
        Chat(ok, n_ctx=256)


def test_bad_config_is_a_config_error(model_path):
    from edge_runtime.errors import ConfigError

    with pytest.raises(ConfigError, match="n_threads"):
        Chat(model_path, n_threads=0)
    with pytest.raises(ConfigError, match="n_ctx"):
        Chat(model_path, n_ctx=10)
    with pytest.raises(ConfigError, match=r"trained on \(8192\)"):
        Chat(model_path, n_threads=1, n_ctx=1 << 16)


def test_missing_backend_names_the_extra(model_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(BackendUnavailableError, match=r"edge-runtime\[llm\]"):
        Chat(model_path)


def test_closed_chat_refuses_work(model_path):
    c = Chat(model_path, n_threads=1, n_ctx=128)
    c.close()
    c.close()  # idempotent
    with pytest.raises(InputError, match="closed"):
        c.ask("hi")
    assert "closed" in repr(c)


# ------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def cli_main():
    """edge_runtime.cli.main (conftest undoes the logging set-up it does as a program)."""
    from edge_runtime.cli import main

    return main


def test_cli_one_shot_prints_the_answer(model_path, capsys, cli_main):
    rc = cli_main(["chat", "--model", str(model_path), "--threads", "1", "--ctx", "256", "--temperature", "0",
               "--max-tokens", "24", "--stats", "--prompt", FRANCE])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "Paris" in out
    assert "prompt +" in err and "tok/s" in err


def test_cli_rejects_an_empty_prompt(model_path, capsys, cli_main):
    assert cli_main(["chat", "--model", str(model_path), "--prompt", "  "]) == 2
    assert "empty" in capsys.readouterr().err


def test_chat_loop_keeps_history_until_reset(chat):
    import re

    from edge_runtime.llm.chat_cli import chat_loop

    japan = "What is the capital of Japan?"
    script = f"{FRANCE}\n{japan}\n/reset\n{japan}\n/stats\n"
    out, err = io.StringIO(), io.StringIO()
    assert chat_loop(chat, stdin=io.StringIO(script), out=out, err=err, stats=True) == 0  # EOF = Ctrl-D
    assert "Paris" in out.getvalue() and "Tokyo" in out.getvalue()
    assert "conversation cleared" in err.getvalue()
    prompts = [int(n) for n in re.findall(r"\[(\d+) prompt \+", err.getvalue())]
    assert len(prompts) == 3
    assert prompts[1] > prompts[0] + chat.count_tokens(japan) // 2  # the first exchange was sent along
    assert prompts[2] == chat.count_tokens(japan)  # /reset: only the new question
