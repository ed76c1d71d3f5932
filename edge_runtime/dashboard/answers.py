"""The facts behind the chat panel's grounded answers, kept so the page can show them on demand.

The chat server's grounding (:class:`~edge_runtime.ask.serving.AskService`) reports each answer it made
from the counts; :class:`AnswerLog` keeps the latest few by question. The page asks for the facts of the
question it just sent and gets those of the most recent answer to exactly that question.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Dict, Optional

__all__ = ["AnswerLog"]


class AnswerLog:
    """The last ``size`` grounded answers, by question text."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._by_question: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()

    def record(self, question: str, answer: Any) -> None:
        """Keep ``answer`` (an :class:`~edge_runtime.ask.answer.Answer`) for ``question``."""
        entry = {"question": question, "at_s": time.time(), **answer.as_dict()}
        key = question.strip()
        with self._lock:
            self._by_question.pop(key, None)
            self._by_question[key] = entry
            while len(self._by_question) > self.size:
                self._by_question.popitem(last=False)

    def facts_for(self, question: str) -> Optional[Dict[str, Any]]:
        """The latest answer recorded for ``question`` (None: it was not answered from the counts)."""
        with self._lock:
            return self._by_question.get(question.strip())
