"""The chat server's view of the question answerer: grounding, tool calls and the runtime's tools.

:class:`AskService` provides the server hooks ``prepare``, ``plan_tool_call``, ``tool_definitions``
and ``run_tool`` (see :class:`~edge_runtime.llm.server.ChatServer`). The runtime supervisor uses it
over the running job; ``edge-runtime serve --db FILE`` over a results database.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import InputError
from .answer import Asker
from .parse_rules import parse
from .tools import arguments_for, run_tool, tool_definitions, tool_for_intent

__all__ = ["AskService"]


class AskService:
    """Grounds chat requests on an :class:`~edge_runtime.ask.answer.Asker`.

    Args:
        asker: answers questions about the counts.
        context: returns a system message (the live totals) for requests that are not about the
            counts; None = such requests go to the model unchanged.
        on_grounded: called once per request answered from the facts (metrics).
        on_answer: called with (question, :class:`~edge_runtime.ask.answer.Answer`) for each answer made
            from the facts (the dashboard shows the facts on demand).
    """

    def __init__(self, asker: Asker, *, context: Optional[Callable[[], str]] = None,
                 on_grounded: Optional[Callable[[], None]] = None,
                 on_answer: Optional[Callable[[str, Any], None]] = None) -> None:
        self.asker = asker
        self.context = context
        self.on_grounded = on_grounded
        self.on_answer = on_answer

    def prepare(self, messages: List[Dict[str, str]]) -> Tuple[List[Dict[str, str]], Any]:
        """A question about the counts gets an exact answer, made on the chat worker (where the model may
        read and word it, numbers checked); any other request gets the live facts as context."""
        question = messages[-1]["content"]
        asker = self.asker
        with_context = messages if self.context is None else [{"role": "system", "content": self.context()},
                                                              *messages]
        if asker.catalog.places and parse(question, asker.catalog).query.intent != "other":
            if self.on_grounded is not None:
                self.on_grounded()

            def make() -> Optional[str]:
                result = asker.ask(question)
                if result.via == "chat":  # the model's reading says it is not about the counts after all
                    return None  # the server generates a free answer (with the live totals as context)
                if self.on_answer is not None:
                    self.on_answer(question, result)
                return result.text
            return with_context, make
        return with_context, None

    def plan_tool_call(self, messages: List[Dict[str, str]], request: Any) -> Any:
        """For a request offering this runtime's tools: the call, with exact arguments, that answers the
        question (None: no tool of ours fits it)."""
        from ..llm.tool_calls import ToolCall

        reading = parse(messages[-1]["content"], self.asker.catalog)
        name = tool_for_intent(reading.query.intent)
        if request.choice not in ("auto", "required"):
            name = request.choice if request.choice == name else None
        if name is None or name not in request.tools or reading.query.unknown:
            return None
        try:
            args = arguments_for(name, reading.query, self.asker.catalog)
        except InputError:
            return None
        return ToolCall(name, json.dumps(args))

    def tool_definitions(self) -> List[Dict[str, Any]]:
        return tool_definitions(self.asker.catalog)

    def run_tool(self, name: str, arguments: Any) -> Dict[str, Any]:
        return run_tool(name, arguments, self.asker.view, self.asker.catalog, tz=self.asker.tz)
