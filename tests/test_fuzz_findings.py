"""Every input the fuzzers (or the review around them) found escaping as an undocumented exception, kept as
a plain regression test: each now gets its documented error. Under a second."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_runtime.errors import ConfigError, ModelFormatError
from edge_runtime.llm.chat import SamplingParams
from edge_runtime.llm.server import _RequestError, parse_request
from edge_runtime.llm.tool_calls import ToolRequestError, convert_tool_messages, parse_tools, schema_grammar, \
    tool_result_answer
from edge_runtime.runtime.config import config_from_dict, load_config
from edge_runtime.vision.model_meta import parse_model_meta

USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize("role", [[], {}, ["user"], 3])
def test_a_role_that_is_not_text_is_a_400(role):
    with pytest.raises(_RequestError, match=r"messages\[0\]\.role") as info:
        parse_request({"messages": [{"role": role, "content": "x"}]}, SamplingParams(), 16)
    assert info.value.status == 400


@pytest.mark.parametrize("turn", [
    {"role": "assistant", "content": None, "tool_calls": [{"function": "not an object"}]},
    {"role": "assistant", "content": None, "tool_calls": 5},
    {"role": "assistant", "content": ["x"], "tool_calls": [{"function": {"name": "f"}}]},
    {"role": "tool", "content": [{"text": 5}, {"type": "text", "text": "ok"}]},
])
def test_malformed_tool_turns_never_raise_and_are_refused_or_read(turn):
    out = convert_tool_messages([turn, USER])
    assert out[-1] == USER and len(out) == 2
    try:
        parse_request({"messages": [turn, USER]}, SamplingParams(), 16)
    except _RequestError as exc:
        assert exc.status == 400


@pytest.mark.parametrize("choice", [{"type": "function", "function": "f"}, {"type": "function",
                                                                         "function": {"name": ["f"]}}])
def test_malformed_tool_choice_is_a_tool_request_error(choice):
    body = {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}
    with pytest.raises(ToolRequestError, match="names a function not in tools") as info:
        parse_tools(body)
    assert info.value.param == "tool_choice"


@pytest.mark.parametrize("parameters, match", [
    ({"type": "stri]g"}, "AssertionError: Unrecognized schema"),  # was a 500 "generation failed"
    ({"type": "array", "items": {"type": "string"}, "minItems": 10**8}, "minItems is 100000000"),  # 1.7 GB, 8 s
    ({"type": "string", "maxLength": -1}, "maxLength is -1"),
    ({"type": "object", "properties": {"a": {"description": "x" * 20_000}}}, "at most 16384"),
])
def test_tool_schemas_the_grammar_converter_cannot_take_are_refused(parameters, match):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (llm extra) makes the grammars")
    with pytest.raises(ToolRequestError, match=match) as info:
        schema_grammar({"name": "f", "parameters": parameters})
    assert info.value.param == "tools"


def test_a_tool_result_nested_past_json_depth_is_no_answer():
    deep = "[" * 100_000 + "]" * 100_000
    assert tool_result_answer([USER, {"role": "tool", "content": deep}]) is None


@pytest.mark.parametrize("suffix, text, match", [
    (".yaml", "source: {uri: 2026-02-31}\n", "YAML value error"),  # datetime's ValueError
    (".yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n", "YAML value error"),  # RecursionError
    (".toml", "[source]\nfps_cap = " + "1" * 5000 + "\n", "TOML value error"),  # int() digit limit
    (".toml", "a = " + "[" * 5000 + "]" * 5000 + "\n", "TOML nested too deeply"),
])
def test_config_files_that_broke_the_parsers_are_config_errors(tmp_path: Path, suffix, text, match):
    path = tmp_path / f"job{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_an_integer_beyond_float_range_is_a_config_error():
    with pytest.raises(ConfigError, match=r"source\.fps_cap.*expected a number"):
        config_from_dict({"source": {"fps_cap": 10**400}})


@pytest.mark.parametrize("names", ["{[1]: 'a'}", "{{1}: 'a'}", "{(1, [2]): 'a'}"])
def test_metadata_literals_that_cannot_be_built_are_model_format_errors(names):
    with pytest.raises(ModelFormatError, match="'names' is not a literal"):
        parse_model_meta(Path("m.onnx"), {"names": names})
