"""The gateway side: counts, events and availability to MQTT (with Home Assistant discovery).

:mod:`.topics` names the topics, :mod:`.discovery` writes Home Assistant's device discovery payload,
:mod:`.mqtt` publishes from the results database with a cursor, so nothing is lost while the broker is
away.
"""
