"""Home Assistant MQTT discovery, device-based: one retained config message at
``<discovery_prefix>/device/<device_id>/config`` that declares every entity of the gateway.

Entities: per line x direction x class a cumulative counter (``state_class: total_increasing``), per
zone an occupancy sensor (``measurement``), and detection fps / frame age as diagnostics. Every one has
a ``unique_id`` and uses the gateway's availability topic (the last will says ``offline``). A component
announced before and gone from the config is sent with its platform only, which removes it from Home
Assistant.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Tuple

from .. import __version__
from .topics import Topics, slug

__all__ = ["components", "device_config"]


def components(places: Mapping[str, str], classes: Iterable[str], topics: Topics, device_id: str
               ) -> Dict[str, Dict[str, Any]]:
    """The entities for these lines/zones and classes, keyed by component id."""
    cmps: Dict[str, Dict[str, Any]] = {}
    classes = list(classes)
    for place, kind in sorted(places.items()):
        if kind == "line":
            for direction in ("in", "out"):
                for cls in classes:
                    cid = f"{slug(place)}_{direction}_{slug(cls)}"
                    cmps[cid] = {"p": "sensor", "name": f"{place} {direction} {cls}", "unique_id": f"{device_id}_{cid}",
                                 "state_topic": topics.total(place, direction, cls), "state_class": "total_increasing",
                                 "unit_of_measurement": "crossings", "icon": "mdi:counter"}
        else:
            for direction in ("enter", "exit"):
                for cls in classes:
                    cid = f"{slug(place)}_{direction}_{slug(cls)}"
                    cmps[cid] = {"p": "sensor", "name": f"{place} {direction} {cls}", "unique_id": f"{device_id}_{cid}",
                                 "state_topic": topics.total(place, direction, cls), "state_class": "total_increasing",
                                 "unit_of_measurement": "entries" if direction == "enter" else "exits",
                                 "icon": "mdi:counter"}
            cid = f"{slug(place)}_occupancy"
            cmps[cid] = {"p": "sensor", "name": f"{place} occupancy", "unique_id": f"{device_id}_{cid}",
                         "state_topic": topics.occupancy(place), "value_template": "{{ value_json.total }}",
                         "json_attributes_topic": topics.occupancy(place), "state_class": "measurement",
                         "unit_of_measurement": "objects", "icon": "mdi:account-group"}
    for key, name, unit in (("fps", "detection fps", "fps"), ("frame_age_s", "frame age", "s")):
        cmps[key] = {"p": "sensor", "name": name, "unique_id": f"{device_id}_{key}", "state_topic": topics.stats,
                     "value_template": "{{ value_json.%s }}" % key, "state_class": "measurement",
                     "unit_of_measurement": unit, "entity_category": "diagnostic"}
    return cmps


def device_config(device_id: str, topics: Topics, cmps: Dict[str, Dict[str, Any]],
                  removed: Iterable[str] = (), discovery_prefix: str = "homeassistant") -> Tuple[str, Dict[str, Any]]:
    """(topic, payload) of the device discovery message; ``removed`` component ids are sent with their
    platform only, which makes Home Assistant drop them."""
    all_cmps = dict(cmps)
    for cid in removed:
        if cid not in all_cmps:
            all_cmps[cid] = {"p": "sensor"}
    payload = {
        "dev": {"ids": [device_id], "name": f"edge-runtime {device_id}", "mf": "edge-runtime", "mdl": "camera counter",
                "sw": __version__},
        "o": {"name": "edge-runtime", "sw": __version__},
        # "stopped" (a clean shutdown) shows as unavailable too.
        "avty_t": topics.availability, "avty_tpl": "{{ 'online' if value == 'online' else 'offline' }}",
        "pl_avail": "online", "pl_not_avail": "offline",
        "cmps": all_cmps,
        "qos": 1,
    }
    return f"{discovery_prefix}/device/{device_id}/config", payload
