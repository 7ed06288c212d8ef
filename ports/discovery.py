"""What a DiscomfortPort is: its uid, tags and mode, read off the graph around it, and the role it plays in a body.

A port's mode is a fact about its links, not a setting on the node: INPUT when nothing feeds it, OUTPUT when it
feeds nothing, PASSTHRU when both, UNCONNECTED when neither. Its role is a fact about the ports of the same uid in
its body (see `ports.model`): the upstream-most is the entry, the downstream-most the exit, those between pass the
value through. Nothing here imports ComfyUI.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..errors import Problem
from ..workflow.graph import Graph, NodeView, id_key

PORT_CLASS = "DiscomfortPort"
WIDGETS = ("unique_id", "tags")  # the port's widgets, in the order the frontend saves them
VALUE = "value"  # the port's one socket, in and out
ITERATION_UID = "iteration"  # reserved: an entry port with this uid takes the 0-based iteration index


class PortMode(enum.Enum):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    PASSTHRU = "PASSTHRU"
    UNCONNECTED = "UNCONNECTED"


class Role(enum.Enum):
    """What a port does in its body, among the ports of its uid."""

    ENTRY = "entry"  # upstream-most: the loop's value for the uid enters here
    EXIT = "exit"  # downstream-most: the uid's value leaves here (and still flows on to what the port feeds)
    ENTRY_EXIT = "entry and exit"  # the uid's only port, fed and feeding: what enters is what leaves
    THROUGH = "pass-through"  # between the two: passes on whatever the chain computed

    @property
    def is_entry(self) -> bool:
        return self in (Role.ENTRY, Role.ENTRY_EXIT)

    @property
    def is_exit(self) -> bool:
        return self in (Role.EXIT, Role.ENTRY_EXIT)


@dataclass(frozen=True)
class Port:
    """A DiscomfortPort as the graph around it defines it."""

    node_id: str
    uid: str
    tags: tuple[str, ...]
    mode: PortMode
    type: str = "*"  # inferred from the links (UI workflows carry link types; API prompts do not)
    title: str | None = None
    role: Role | None = None  # in its body; None when it belongs to none (unconnected, or untagged inside a loop)
    loop_id: str | None = None  # the loop whose body it belongs to; None for the workflow's own body

    @property
    def takes(self) -> bool:
        """A value can be given to the graph here."""
        return self.mode in (PortMode.INPUT, PortMode.PASSTHRU)

    @property
    def gives(self) -> bool:
        """A value can be taken from the graph here."""
        return self.mode in (PortMode.OUTPUT, PortMode.PASSTHRU)

    @property
    def linked(self) -> bool:
        return self.mode is not PortMode.UNCONNECTED


def parse_tags(raw: Any) -> tuple[str, ...]:
    """Tags are written comma-separated in the widget; blanks and repeats are dropped, order kept."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return tuple(dict.fromkeys(tag for tag in (str(item).strip() for item in items) if tag))


def scan_ports(graph: Graph, port_class: str = PORT_CLASS, defs: Mapping[str, Any] | None = None) -> list[Port]:
    """Every port of `graph` with its uid, tags, mode and type (no role yet), in node-id order.

    A port's type comes from the link types a UI workflow records; API prompts record none, so with node
    definitions `defs` (class type -> NodeDef) it is read from the socket the port is linked to.
    """
    ports = []
    for node in graph.nodes.values():
        if node.class_type != port_class:
            continue
        # Only the value socket makes a port fed; a uid widget turned into an input does not.
        feeding = [link for link in graph.incoming(node.id) if node.input_name(link.target_slot) in (VALUE, None)]
        fed_by = feeding[0] if feeding else None
        outgoing = graph.outgoing(node.id)
        mode = {
            (False, True): PortMode.INPUT,
            (True, False): PortMode.OUTPUT,
            (True, True): PortMode.PASSTHRU,
            (False, False): PortMode.UNCONNECTED,
        }[(fed_by is not None, bool(outgoing))]
        link_type = fed_by.type if fed_by is not None else outgoing[0].type if outgoing else "*"
        if link_type == "*" and defs is not None:
            link_type = _socket_type(graph, node.id, defs)
        uid, tags = _widget_values(node)
        ports.append(Port(node.id, uid, parse_tags(tags), mode, link_type, node.title))
    return sorted(ports, key=lambda port: id_key(port.node_id))


def assign_roles(
    graph: Graph,
    ports: Iterable[Port],
    loop_id: str | None = None,
    *,
    implied_parents: Mapping[str, set[str]] | None = None,
    implied_children: Mapping[str, set[str]] | None = None,
) -> list[Port]:
    """The linked `ports` of one body, each with its role among the ports of its uid.

    Per uid, one walk down and one walk up from all its ports: a port reached going down has a port of its uid
    upstream (it is no entry), one reached going up has one downstream (it is no exit). Only a fed port can be an
    exit and only a port that is not fed from inside the chain can be an entry, so an INPUT port is an entry and
    an OUTPUT port an exit whatever else their uid has. The implied edges are dependencies no link shows: a loop
    node's outputs depend on its body's exits.
    """
    by_uid: dict[str, list[Port]] = {}
    for port in ports:
        if port.linked:
            by_uid.setdefault(port.uid, []).append(port)
    placed = []
    for group in by_uid.values():
        ids = {port.node_id for port in group}
        below = graph.descendants(ids, implied_children) if len(group) > 1 else set()
        above = graph.ancestors(ids, implied_parents) if len(group) > 1 else set()
        for port in group:
            entry = port.takes and port.node_id not in below
            exit_ = port.gives and port.node_id not in above
            role = Role.ENTRY_EXIT if entry and exit_ else Role.ENTRY if entry else Role.EXIT if exit_ else Role.THROUGH
            placed.append(replace(port, role=role, loop_id=loop_id))
    return sorted(placed, key=lambda port: id_key(port.node_id))


def port_problems(ports: Iterable[Port]) -> list[Problem]:
    """Every fault of one body's ports (with roles): an empty uid, two exits for one uid, an exit for `iteration`;
    each names the ports at fault."""
    problems = []
    exits: dict[str, list[Port]] = {}
    for port in ports:
        if not port.uid:
            problems.append(Problem(f"DiscomfortPort node {port.node_id}{_title(port)} has an empty unique_id",
                                    (port.node_id,)))  # fmt: skip
        elif port.role is not None and port.role.is_exit:
            exits.setdefault(port.uid, []).append(port)
    for uid, found in exits.items():
        if len(found) > 1:
            problems.append(Problem(
                f"ports {', '.join(p.node_id for p in found)} are all downstream-most ports of uid {uid!r}, so each "
                "would be its exit; a uid leaves a body through one port: link one into the other, or rename one",
                tuple(p.node_id for p in found),
            ))  # fmt: skip
        culprit = next((p for p in found if p.role is Role.EXIT), None) if uid == ITERATION_UID else None
        if culprit is not None:
            problems.append(Problem(f"port {culprit.node_id}{_title(culprit)} gives the reserved uid "
                                    f"{ITERATION_UID!r}, which only enters a body (the iteration index)",
                                    (culprit.node_id,)))  # fmt: skip
    return problems


def _title(port: Port) -> str:
    return f" ({port.title!r})" if port.title and port.title != port.uid else ""


def _socket_type(graph: Graph, port_id: str, defs: Mapping[str, Any]) -> str:
    """The type of what feeds an API-prompt port, else of the first typed input it feeds."""
    for link in graph.incoming(port_id):
        source = defs.get(graph.nodes[link.origin_id].class_type)
        outputs = source.outputs if source is not None else ()
        if 0 <= link.origin_slot < len(outputs) and outputs[link.origin_slot] != "*":
            return outputs[link.origin_slot]
    for link in sorted(graph.outgoing(port_id), key=lambda link: id_key(link.target_id)):
        target = defs.get(graph.nodes[link.target_id].class_type)
        name = graph.nodes[link.target_id].input_name(link.target_slot)
        spec = target.input(name) if target is not None and name is not None else None
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
