"""OpenAI tool calling for the chat server: the request's ``tools`` / ``tool_choice``, tool messages in
the conversation, and arguments generated under the tool's JSON schema.

Policy (a 135M-parameter model cannot be trusted to decide on its own when to call a tool):

- ``tool_choice: "none"`` (or no tools): answer as usual.
- ``"auto"``: a tool of this runtime is called when the question is about the counts and the request
  offers that tool (the arguments are read by the rules, exactly); otherwise the model answers in text.
- ``"required"`` or a named function: a call is always returned. For this runtime's tools the arguments
  come from the rules; for a client's own tool the model writes them under a grammar made from the tool's
  JSON schema, so they always parse and fit the schema.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["ToolRequest", "ToolCall", "parse_tools", "convert_tool_messages", "schema_grammar", "schema_arguments"]


class ToolRequestError(ValueError):
    """A malformed ``tools`` / ``tool_choice`` (the server answers 400 naming ``param``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ToolRequest:
    """The tools a request offers ({name: definition}) and its choice: "auto" | "required" | a name."""

    tools: Dict[str, Dict[str, Any]]
    choice: str


@dataclass(frozen=True)
class ToolCall:
    """One call to return: ``arguments`` is a JSON string, as in the OpenAI format."""

    name: str
    arguments: str
    id: str = ""

    def as_openai(self, index: Optional[int] = None) -> Dict[str, Any]:
        out: Dict[str, Any] = {"id": self.id or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                               "function": {"name": self.name, "arguments": self.arguments}}
        if index is not None:
            out["index"] = index
        return out


def parse_tools(body: Dict[str, Any]) -> Optional[ToolRequest]:
    """Read ``tools`` and ``tool_choice``; None when no tool may be called.

    Raises:
        ToolRequestError: naming the field.
    """
    raw = body.get("tools")
    choice = body.get("tool_choice")
    if raw is None:
        if choice not in (None, "none"):
            raise ToolRequestError("tool_choice", "tool_choice given without tools")
        return None
    if not isinstance(raw, list) or len(raw) > 64:
        raise ToolRequestError("tools", "expected an array of at most 64 tools")
    tools: Dict[str, Dict[str, Any]] = {}
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            raise ToolRequestError(f"tools[{i}]", "expected {\"type\": \"function\", \"function\": {...}}")
        name = fn.get("name")
        if not isinstance(name, str) or not name or len(name) > 64 or not all(c.isalnum() or c in "_-" for c in name):
            raise ToolRequestError(f"tools[{i}].function.name", f"expected a name of [a-zA-Z0-9_-]{{1,64}}, got {name!r}")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise ToolRequestError(f"tools[{i}].function.parameters", "expected a JSON schema object")
        tools[name] = {"name": name, "description": fn.get("description", ""), "parameters": params}
    if choice is None:
        choice = "auto"
    if isinstance(choice, dict):
        fn = choice.get("function") if choice.get("type") == "function" else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or name not in tools:
            raise ToolRequestError("tool_choice", f"names a function not in tools: {name!r}")
        choice = name
    elif choice not in ("none", "auto", "required"):
        raise ToolRequestError("tool_choice", f"expected 'none', 'auto', 'required' or a function, got {choice!r}")
    if choice == "none" or not tools:
        return None
    return ToolRequest(tools, choice)


def convert_tool_messages(raw: List[Any]) -> List[Any]:
    """Rewrite tool-calling turns for a chat template that has no tool roles: an assistant turn with
    ``tool_calls`` becomes its calls as JSON text, a ``tool`` result becomes a user turn that says which
    call it answers. Other messages are returned unchanged.
    A turn of the wrong shape (``tool_calls`` not a list, content neither text nor a list of text parts)
    is returned unchanged, for the request's own checks to refuse with a 400 naming the field; this
    function raises nothing.
    """
    out = []
    for m in raw:
        if not isinstance(m, dict):
            out.append(m)
            continue
        calls, content = m.get("tool_calls"), m.get("content")
        if m.get("role") == "assistant" and calls and isinstance(calls, list) and isinstance(content, (str, type(None))):
            fns = [c.get("function") if isinstance(c.get("function"), dict) else {} for c in calls if isinstance(c, dict)]
            listed = [{"name": fn.get("name"), "arguments": fn.get("arguments")} for fn in fns]
            out.append({"role": "assistant", "content": (content or "") + json.dumps(listed)})
        elif m.get("role") == "tool":
            if isinstance(content, list):
                content = "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            out.append({"role": "user", "content": f"Tool result ({m.get('tool_call_id', '')}): {content}"})
        else:
            out.append(m)
    return out


def tool_result_answer(raw: List[Any]) -> Optional[Tuple[str, str]]:
    """If the conversation ends with a result of this runtime's tools, (tool_call_id, its answer sentence)."""
    if not raw or not isinstance(raw[-1], dict) or raw[-1].get("role") != "tool":
        return None
    try:
        result = json.loads(raw[-1].get("content") or "")
    except (TypeError, ValueError, RecursionError):  # not text, not JSON, or nested past the parser's depth
        return None
    if isinstance(result, dict) and isinstance(result.get("answer"), str) and isinstance(result.get("tool"), str):
        return str(raw[-1].get("tool_call_id", "")), result["answer"]
    return None


_MAX_SCHEMA_CHARS = 16 * 1024
_MAX_SCHEMA_DEPTH = 32
_MAX_SCHEMA_REPEAT = 256  # minItems / maxLength / ...: llama.cpp's converter writes each repetition out
_REPEAT_KEYS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "minContains",
                "maxContains")


def _check_schema(value: Any, where: str, depth: int = 0) -> None:
    if depth > _MAX_SCHEMA_DEPTH:
        raise ToolRequestError(where, f"schema nested more than {_MAX_SCHEMA_DEPTH} deep")
    if isinstance(value, dict):
        for key in _REPEAT_KEYS:
            n = value.get(key)
            if isinstance(n, (int, float)) and not isinstance(n, bool) and not 0 <= n <= _MAX_SCHEMA_REPEAT:
                raise ToolRequestError(where, f"{key} is {n}; at most {_MAX_SCHEMA_REPEAT} (each repetition becomes "
                                              f"grammar text)")
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return
    for child in children:
        _check_schema(child, where, depth + 1)


def schema_grammar(tool: Dict[str, Any]) -> str:
    """The GBNF grammar (llama.cpp's converter) that makes the model write arguments fitting the tool's schema.

    Raises:
        ToolRequestError: the schema is larger than 16 KB, nested deeper than 32, repeats more than 256
            times (minItems, maxLength, ...), or is not a schema the converter understands (param
            ``tools``; the server answers 400 before anything is queued).
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    where = "tools"
    text = json.dumps(tool["parameters"])
    if len(text) > _MAX_SCHEMA_CHARS:
        raise ToolRequestError(where, f"function {tool['name']!r}: parameters schema of {len(text)} characters; "
                                      f"at most {_MAX_SCHEMA_CHARS}")
    _check_schema(tool["parameters"], where)
    try:
        return json_schema_to_gbnf(text)
    # The converter reports what it cannot follow with assert and whatever its lookups raise.
    except (AssertionError, ValueError, TypeError, KeyError, IndexError, AttributeError, NotImplementedError,
            RecursionError) as exc:
        raise ToolRequestError(where, f"function {tool['name']!r}: parameters is not a JSON schema the grammar "
                                      f"converter can follow ({type(exc).__name__}: {str(exc)[:120]})") from None


def schema_arguments(chat: Any, messages: List[Dict[str, str]], tool: Dict[str, Any],
                     grammar: Optional[str] = None) -> str:
    """Arguments for a client's tool, written by the model under the tool's JSON schema.

    Args:
        grammar: :func:`schema_grammar` of the tool, when already made (the server makes it at admission).

    Raises:
        ToolRequestError: see :func:`schema_grammar`.
    """
    if grammar is None:
        grammar = schema_grammar(tool)
    prompt = [{"role": "system", "content": f"Call the function {tool['name']}: {tool.get('description', '')}. "
                                            f"Reply with its arguments as JSON."}, *messages]
    return chat.ask(prompt, grammar=grammar, temperature=0.0, max_tokens=128).strip()
