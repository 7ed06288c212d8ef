"""Where values enter and leave a graph: every DiscomfortPort, its uid, tags and mode.

A port's mode is a fact about the graph, not a setting on the node: INPUT when nothing feeds it, OUTPUT when it
feeds nothing, PASSTHRU when both, UNCONNECTED when neither. The functions here read API prompts and UI workflows
alike and never import ComfyUI.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PortError
from ..workflow.graph import MODE_BYPASSED, MODE_MUTED, NodeView, links_of, nodes_of

PORT_CLASS = "DiscomfortPort"
WIDGETS = ("unique_id", "tags")  # the port's widgets, in the order the frontend saves them
VALUE = "value"  # the port's one socket, in and out


class PortMode(enum.Enum):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    PASSTHRU = "PASSTHRU"
    UNCONNECTED = "UNCONNECTED"


@dataclass(frozen=True)
class Port:
    """A DiscomfortPort as the graph around it defines it."""

    node_id: str
    uid: str
    tags: tuple[str, ...]
    mode: PortMode
    type: str = "*"  # inferred from the links (UI workflows carry link types; API prompts do not)
    title: str | None = None

    @property
    def takes(self) -> bool:
        """A value can be given to the graph here."""
        return self.mode in (PortMode.INPUT, PortMode.PASSTHRU)

    @property
    def gives(self) -> bool:
        """A value can be taken from the graph here."""
        return self.mode in (PortMode.OUTPUT, PortMode.PASSTHRU)


def parse_tags(raw: Any) -> tuple[str, ...]:
    """Tags are written comma-separated in the widget; blanks and repeats are dropped, order kept."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return tuple(dict.fromkeys(tag for tag in (str(item).strip() for item in items) if tag))


def find_ports(graph: Mapping[str, Any], port_class: str = PORT_CLASS) -> list[Port]:
    """Every active DiscomfortPort of an API prompt or UI workflow, in node-id order.

    Muted and bypassed ports are left out: ComfyUI does not run them, so they carry nothing.
    """
    nodes = [node for node in nodes_of(graph) if node.mode not in (MODE_MUTED, MODE_BYPASSED)]
    by_id = {node.id: node for node in nodes}
    port_ids = {node.id for node in nodes if node.class_type == port_class}
    incoming: dict[str, str] = {}
    outgoing: dict[str, str] = {}
    for link in links_of(graph):
        if link.origin_id not in by_id or link.target_id not in by_id:
            continue
        # Only the value socket makes a port an entry; a uid widget turned into an input does not.
        if link.target_id in port_ids and by_id[link.target_id].input_name(link.target_slot) in (VALUE, None):
            incoming[link.target_id] = link.type
        if link.origin_id in port_ids:
            outgoing.setdefault(link.origin_id, link.type)
    ports = []
    for node in nodes:
        if node.id not in port_ids:
            continue
        uid, tags = _widget_values(node)
        has_in, has_out = node.id in incoming, node.id in outgoing
        mode = {
            (False, True): PortMode.INPUT,
            (True, False): PortMode.OUTPUT,
            (True, True): PortMode.PASSTHRU,
            (False, False): PortMode.UNCONNECTED,
        }[(has_in, has_out)]
        link_type = incoming.get(node.id, outgoing.get(node.id, "*"))
        ports.append(Port(node.id, uid, parse_tags(tags), mode, link_type, node.title))
    return sorted(ports, key=lambda port: _id_key(port.node_id))


def validate_ports(ports: Iterable[Port]) -> None:
    """Raise one `PortError` naming every port at fault: an empty uid, or an OUTPUT uid given by two ports."""
    problems = []
    givers: dict[str, list[str]] = {}
    for port in ports:
        if not port.uid:
            problems.append(f"DiscomfortPort node {port.node_id} has an empty unique_id")
        elif port.mode is PortMode.OUTPUT:
            givers.setdefault(port.uid, []).append(port.node_id)
    for uid, node_ids in givers.items():
        if len(node_ids) > 1:
            problems.append(
                f"OUTPUT ports {', '.join(node_ids)} share the unique_id {uid!r}; each OUTPUT uid must be unique"
            )
    if problems:
        raise PortError(problems)


def _widget_values(node: NodeView) -> tuple[str, Any]:
    widgets = node.widgets
    if isinstance(widgets, Mapping):
        uid, tags = widgets.get("unique_id", ""), widgets.get("tags", "")
    else:
        uid = widgets[0] if len(widgets) > 0 else ""
        tags = widgets[1] if len(widgets) > 1 else ""
    # An API prompt may link the uid widget to another node; only a constant uid names a port.
    return (uid.strip() if isinstance(uid, str) else ""), tags


def _id_key(node_id: str) -> tuple:
    # Numeric ids sort as numbers, subgraph ids ("12:3") part by part, anything else after.
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in node_id.split(":"))
