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


def find_ports(
    graph: Mapping[str, Any], port_class: str = PORT_CLASS, defs: Mapping[str, Any] | None = None
) -> list[Port]:
    """Every active DiscomfortPort of an API prompt or UI workflow, in node-id order.

    Muted and bypassed ports are left out: ComfyUI does not run them, so they carry nothing. A port's type comes
    from the link types a UI workflow records; API prompts record none, so with node definitions `defs` (class
    type -> NodeDef) it is read from the socket the port is linked to.
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
        if link_type == "*" and defs is not None:
            link_type = _socket_type(graph, node.id, defs)
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


def _socket_type(graph: Mapping[str, Any], port_id: str, defs: Mapping[str, Any]) -> str:
    """The type of what feeds an API-prompt port, else of the first typed input it feeds."""
    value = (graph[port_id].get("inputs") or {}).get(VALUE)
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] in graph:
        source = defs.get(graph[value[0]].get("class_type"))
        if source is not None and 0 <= value[1] < len(source.outputs) and source.outputs[value[1]] != "*":
            return source.outputs[value[1]]
    for node in graph.values():
        target = defs.get(node.get("class_type"))
        for name, linked in (node.get("inputs") or {}).items():
            if target is not None and isinstance(linked, list) and linked[:1] == [port_id]:
                spec = target.input(name)
                if spec is not None and spec.type not in ("*", "COMBO"):
                    return spec.type
    return "*"


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


@dataclass(frozen=True)
class Interface:
    """What a workflow takes and gives, by uid, and its ports in execution order."""

    takes: dict[str, tuple[Port, ...]]  # uid -> entry ports (INPUT or PASSTHRU)
    gives: dict[str, Port]  # uid -> the port its value is read from (OUTPUT; PASSTHRU when no OUTPUT has the uid)
    order: tuple[Port, ...]  # every linked port, upstream ports first


def interface(graph: Mapping[str, Any], port_class: str = PORT_CLASS) -> Interface:
    """The uids a workflow takes and gives; raises `PortError` for bad uids, cycles and dangling links."""
    ports = [p for p in find_ports(graph, port_class) if p.mode is not PortMode.UNCONNECTED]
    validate_ports(ports)
    order = execution_order(graph)
    position = {node_id: index for index, node_id in enumerate(order)}
    ports.sort(key=lambda p: position.get(p.node_id, len(position)))
    takes: dict[str, list[Port]] = {}
    outputs = {p.uid: p for p in ports if p.mode is PortMode.OUTPUT}
    passthrus: dict[str, Port] = {}
    for port in ports:
        if port.takes:
            takes.setdefault(port.uid, []).append(port)
        if port.mode is PortMode.PASSTHRU:
            passthrus[port.uid] = port  # the last one downstream
    gives = {**{uid: p for uid, p in passthrus.items() if uid not in outputs}, **outputs}
    return Interface({uid: tuple(found) for uid, found in takes.items()}, gives, tuple(ports))


def execution_order(graph: Mapping[str, Any]) -> list[str]:
    """Node ids, each after everything that feeds it. Raises `PortError` on a cycle or a dangling link."""
    nodes = {node.id for node in nodes_of(graph)}
    parents: dict[str, set[str]] = {node_id: set() for node_id in nodes}
    dangling = []
    for link in links_of(graph):
        if link.origin_id not in nodes or link.target_id not in nodes:
            name = f"link {link.id}" if link.id is not None else "a link"
            dangling.append(f"{name} ({link.origin_id} -> {link.target_id})")
            continue
        parents[link.target_id].add(link.origin_id)
    if dangling:
        raise PortError([f"{entry} names a node that is not in the workflow" for entry in dangling])
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in sorted(nodes, key=_id_key):
        stack = [(start, iter(sorted(parents[start], key=_id_key)))]
        if state.get(start) == 2:
            continue
        state[start] = 1
        while stack:
            node_id, pending = stack[-1]
            parent = next(pending, None)
            if parent is None:
                stack.pop()
                state[node_id] = 2
                order.append(node_id)
            elif state.get(parent) == 1:
                cycle = [entry for entry, _ in stack][[entry for entry, _ in stack].index(parent) :]
                raise PortError([f"the workflow has a cycle through nodes {' -> '.join([*cycle, parent])}"])
            elif state.get(parent) != 2:
                state[parent] = 1
                stack.append((parent, iter(sorted(parents[parent], key=_id_key))))
    return order
