"""Grounded answers: exact numbers from the counts, phrased (and checked) with the real SmolLM2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import pytest

from edge_runtime.llm.grounding import answer, gather_facts, parse_question

NAMES = {0: "person", 1: "fallen person"}
KINDS = {"walkway": "line", "lawn": "zone"}


@dataclass
class Rows:
    """An event view over a fixed list of (t_s, name, class_id, direction)."""

    rows: List[tuple]
    now: Optional[float]

    def now_s(self):
        return self.now

    def event_rows(self, since_s, until_s):
        return [r for r in self.rows if (since_s is None or r[0] > since_s) and (until_s is None or r[0] <= until_s)]


EVENTS = Rows([
    (10.0, "walkway", 0, "in"), (100.0, "walkway", 0, "out"), (400.0, "walkway", 0, "in"),
    (500.0, "walkway", 1, "in"), (590.0, "walkway", 0, "out"), (595.0, "lawn", 0, "enter"),
    (599.0, "lawn", 0, "exit"),
], now=600.0)


@pytest.mark.parametrize("question, window, name, classes, direction", [
    ("How many people crossed the line in the last 5 minutes?", 300.0, "walkway", (0,), None),
    ("How many people walked in during the past hour?", 3600.0, None, (0,), "in"),
    ("how many went out of the walkway in total?", None, "walkway", None, "out"),
    ("How many fallen person events so far?", None, None, (1,), None),
    ("How many people entered the lawn in the last 30 seconds?", 30.0, "lawn", (0,), "in"),
    ("how many pedestrians left the lawn zone in the last two minutes", 120.0, "lawn", (0,), "out"),
])
def test_parse_question(question, window, name, classes, direction) -> None:
    q = parse_question(question, names=KINDS, class_names=NAMES)
    assert (q.window_s, q.name, q.class_ids, q.direction) == (window, name, classes, direction)


def test_facts_are_exact() -> None:
    q = parse_question("How many people crossed the walkway line in the last 5 minutes?", names=list(KINDS),
                       class_names=NAMES)
    facts = gather_facts(q, EVENTS, class_names=NAMES, kinds=KINDS)
    # In (300, 600]: person in at 400, out at 590 (the fallen person at 500 is another class).
    assert facts.total == 2 and facts.by_direction == {"in": 1, "out": 1}
    assert facts.sentence == "2 people crossed the walkway line in the last 5 minutes (1 in, 1 out)."
    everything = gather_facts(parse_question("how many objects crossed the walkway?", names=list(KINDS),
                                             class_names=NAMES), EVENTS, class_names=NAMES, kinds=KINDS)
    assert everything.total == 5
    zone = gather_facts(parse_question("How many people entered the lawn?", names=list(KINDS), class_names=NAMES),
                        EVENTS, class_names=NAMES, kinds=KINDS)
    assert zone.total == 1 and zone.by_direction == {"enter": 1}


class _Replies:
    """Stands in for the LLM to exercise the reply checker: says a fixed sentence."""

    def __init__(self, text: str) -> None:
        self.text = text

    def ask(self, messages, **kw):
        return self.text


@pytest.mark.parametrize("reply, via", [
    ("Two people... precisely 2 people crossed the walkway line recently.", "llm"),
    ("7 people crossed the walkway line.", "template"),  # invented number
    ("Nobody crossed it.", "template"),  # the count is missing
    ("2 people crossed, 1 in and 1 out, in the last 5 minutes.", "llm"),
    ("2 people crossed in the last 6 minutes.", "template"),  # a wrong window is a wrong number too
])
def test_llm_reply_is_checked_against_the_facts(reply, via) -> None:
    result = answer("How many people crossed the walkway line in the last 5 minutes?", EVENTS,
                    class_names=NAMES, kinds=KINDS, chat=_Replies(reply))
    assert result.via == via
    if via == "template":
        assert result.text == result.facts.sentence and result.notes


@pytest.fixture(scope="module")
def real_run():
    pytest.importorskip("cv2", reason="opencv-python-headless has no wheel for this platform (armv7)")
    from edge_runtime.runtime.build import build_pipeline
    from edge_runtime.runtime.config import default_config

    pipeline = build_pipeline(default_config(), quiet=True)
    pipeline.run(max_frames=250)
    return pipeline


@pytest.fixture(scope="module")
def chat():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the llm extra) is not installed")
    from edge_runtime.assets import ensure
    from edge_runtime.llm.chat import Chat

    model = Chat(ensure("smollm2-135m"), n_threads=2, n_ctx=1024)
    yield model
    model.close()


@pytest.mark.parametrize("question, direction", [
    ("How many people crossed the walkway line?", None),
    ("How many people walked in across the walkway line in the last minute?", "in"),
    ("How many people went out across the walkway line in the last 10 seconds?", "out"),
])
def test_real_model_answers_with_the_real_counts(real_run, chat, question, direction) -> None:
    from edge_runtime.llm.grounding import MemoryEvents

    events = list(real_run.recent_events)
    assert events, "the first 250 frames hold crossings; without them this test proves nothing"
    now = real_run.now_s
    window = {None: None, "in": 60.0, "out": 10.0}[direction]
    expected = sum(1 for e in events if (direction is None or e.direction.value == direction)
                   and (window is None or e.timestamp_s > now - window))
    result = answer(question, MemoryEvents(real_run), class_names=real_run.detector.class_names,
                    kinds={"walkway": "line"}, chat=chat)
    assert result.facts.total == expected
    numbers = [int(n) for n in __import__("re").findall(r"\b\d+\b", result.text)]
    assert expected in numbers, result
    assert set(numbers) <= set(result.facts.numbers), result
