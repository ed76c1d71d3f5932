"""Grounded answers about what the camera counted.

A question becomes a :class:`~edge_runtime.ask.query.Query` (intent + slots) — read by deterministic
rules (:mod:`.parse_rules`, English and Chinese), or by the LLM constrained to the configured names
(:mod:`.parse_llm`) when the rules cannot settle it. :mod:`.facts` computes the answer's numbers from the
results database (or the running pipeline) only; :mod:`.answer` phrases them, optionally through the
LLM with every number checked. :mod:`.tools` offers the same queries as OpenAI tools.
"""
