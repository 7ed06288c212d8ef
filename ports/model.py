"""One model of a graph's ports: every port's mode and role, and the body of every loop.

Port discovery (`find_ports`), workflow interfaces (`interface`, which stitching reads) and loop planning
(`executor.plan`) all read a `PortGraph`, so they cannot disagree about what a port is. The rules (also in the
README):

- A loop's body is named by its `body` widget; the linked ports tagged with that name are the body's ports. A
  workflow's own body is every other linked port that does not run inside a loop.
- Within a body the ports of one uid form chains along links: the upstream-most are its entries, the
  downstream-most its exit, those between pass the value on (`discovery.assign_roles`). A loop node counts as
  downstream of its body's exits, so a chain may run through a loop nested in the body.
- A loop's body is its ports, everything downstream of them (its *core*, which runs every iteration), the bodies
  of loops found in it, and every ancestor of all that (its *feeders*: a loader feeding the body runs inside the
  loop, once).
- Loops nest at most `MAX_DEPTH` deep.

Every body is worked out once, when first asked for, by walks over one `workflow.graph.Graph`: preparing a prompt
takes time in proportion to its size, whatever its nesting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PortError, WorkflowError
from ..workflow.graph import Graph, detect_format, id_key
from .discovery import PORT_CLASS, Port, assign_roles, port_problems, scan_ports

# Node types whose body is a region of the same graph, with the position of their `body` widget in a UI workflow's
# widgets_values (API prompts name it). tests/test_port_model.py checks the positions against the node classes.
LOOP_CLASSES: Mapping[str, int] = {"DiscomfortLoop": 0, "DiscomfortFolderLoop": 3}
PARKED = "discomfort"  # a prepared loop node's dict holds its body under this key (executor.plan.prepare_prompt)
MAX_DEPTH = 8  # loops inside loops; each level holds a private executor and adds its frames to the stack


@dataclass(frozen=True)
class LoopBody:
    """What one loop runs: its nodes and its ports, each port with its role."""

    loop_id: str
    name: str
    core: frozenset[str]  # the ports and everything downstream of them: runs every iteration
    nodes: frozenset[str]  # the core, the bodies of loops inside, and every ancestor: all the loop runs
    ports: tuple[Port, ...]
    inner: frozenset[str]  # loop nodes inside the body, at any depth
    depth: int  # 1 when no loop is inside

    @property
    def feeders(self) -> frozenset[str]:
        """Nodes the body needs but that no port leads to: they run once, their outputs cached."""
        return self.nodes - self.core

    def entries(self) -> dict[str, list[Port]]:
        return _by_uid(port for port in self.ports if port.role is not None and port.role.is_entry)

    def exits(self) -> dict[str, Port]:
        return {uid: found[0] for uid, found in _by_uid(p for p in self.ports if p.role and p.role.is_exit).items()}


@dataclass(frozen=True)
class _Walk:
    name: str
    tagged: list[Port]
    core: frozenset[str]
    nodes: frozenset[str]
    loops: frozenset[str]  # loop nodes among `nodes`, the loop itself excluded (a loop in its own body is refused)


class _TooDeep(Exception):
    """Raised through the levels of a nest deeper than MAX_DEPTH; the outermost loop asked about reports it."""


@dataclass(frozen=True)
class Interface:
    """What a workflow takes and gives, by uid, and its ports in execution order."""

    takes: dict[str, tuple[Port, ...]]  # uid -> its entry ports
    gives: dict[str, Port]  # uid -> its exit port
    order: tuple[Port, ...]  # every port of the workflow's own body, upstream ports first


class PortGraph:
    """The ports and loop bodies of one API prompt or UI workflow.

    Args:
        graph: the prompt or workflow (or a `Graph` of it).
        defs: node definitions (class type -> NodeDef), to type the ports of API prompts.
        fixed: nodes that stay in the run around every loop, never pulled into a body (ComfyUI's own loop
            boundaries, and what feeds them): a body's walks stop at them, and what they give a body enters it
            from outside (`feeds`).
    """

    def __init__(self, graph: Mapping[str, Any] | Graph, *, defs: Mapping[str, Any] | None = None,
                 port_class: str = PORT_CLASS, fixed: Collection[str] = ()):  # fmt: skip
        self.graph = Graph.of(graph)
        self.fixed = frozenset(fixed)
        self._source = graph if isinstance(graph, Mapping) else None
        self._ui = self._source is not None and detect_format(self._source) == "ui"
        self._ports = {port.node_id: port for port in scan_ports(self.graph, port_class, defs)}
        self._tagged: dict[str, list[Port]] = {}
        for port in self._ports.values():
            if port.linked:
                for tag in port.tags:
                    self._tagged.setdefault(tag, []).append(port)
        self.loops = sorted((n.id for n in self.graph.nodes.values() if n.class_type in LOOP_CLASSES), key=id_key)
        self._loop_set = set(self.loops)
        self._walks: dict[str, _Walk] = {}
        self._bodies: dict[str, LoopBody] = {}
        self._failures: dict[str, WorkflowError] = {}
        # A loop node's outputs depend on its body's exits, though no link shows it: these edges let a chain of
        # one uid run through a loop nested in its body.
        self._loop_parents: dict[str, set[str]] = {}
        self._loop_children: dict[str, set[str]] = {}

    # --- loops -------------------------------------------------------------------------------------------------

    def is_parked(self, loop_id: str) -> bool:
        """The loop's body was moved into its node already (a prepared prompt): it is not in this graph."""
        node = self._source.get(loop_id) if self._source is not None and not self._ui else None
        return isinstance(node, Mapping) and PARKED in node

    def body_name(self, loop_id: str) -> str:
        node = self.graph.nodes[loop_id]
        widgets = node.widgets
        if isinstance(widgets, Mapping):
            name = widgets.get("body")
        else:
            position = LOOP_CLASSES[node.class_type]
            name = widgets[position] if len(widgets) > position else None
        if not isinstance(name, str) or not name.strip():
            raise WorkflowError(f"loop {loop_id}: the body name is empty; name it and tag the body's ports with it")
        return name.strip()

    def loop_body(self, loop_id: str) -> LoopBody:
        """The body of loop `loop_id`; raises `WorkflowError` (or `PortError`) naming what is wrong with it."""
        if loop_id in self._failures:
            raise self._failures[loop_id]
        try:
            return self._body(loop_id, ())
        except _TooDeep as too_deep:
            error: WorkflowError = WorkflowError(f"loops are nested more than {MAX_DEPTH} deep ({too_deep})")
        except WorkflowError as failure:
            error = failure
        self._failures[loop_id] = error
        raise error

    def reach(self, loop_id: str) -> frozenset[str]:
        """The nodes loop `loop_id`'s own ports lead to, even when its body cannot run (nothing when they cannot be
        found): what the loop would have run."""
        if loop_id in self._bodies:
            return self._bodies[loop_id].nodes
        with contextlib.suppress(WorkflowError):  # a walk that found a self-link is kept all the same
            self._walk(loop_id)
        walk = self._walks.get(loop_id)
        return walk.nodes - {loop_id} if walk is not None else frozenset()

    def bodies(self) -> dict[str, LoopBody | WorkflowError]:
        """Every loop of the graph (not those already parked) with its body, or the error that explains why not."""
        found: dict[str, LoopBody | WorkflowError] = {}
        for loop_id in self.loops:
            if not self.is_parked(loop_id):
                try:
                    found[loop_id] = self.loop_body(loop_id)
                except WorkflowError as error:
                    found[loop_id] = error
        return found

    def outermost(self) -> list[str]:
        """Loops with a body that no other loop's body holds."""
        bodies = {loop_id: body for loop_id, body in self.bodies().items() if isinstance(body, LoopBody)}
        inner = set().union(*(body.inner for body in bodies.values()))
        return [loop_id for loop_id in bodies if loop_id not in inner]

    def _body(self, loop_id: str, enclosing: tuple[str, ...]) -> LoopBody:
        if loop_id in self._bodies:
            body = self._bodies[loop_id]
            # Found first on its own (its id came first), it is checked again where it stands in the nest.
            if len(enclosing) + body.depth > MAX_DEPTH:
                raise _TooDeep(" > ".join((*enclosing, loop_id, "...")))
            return body
        if loop_id in enclosing:
            raise WorkflowError(f"loops {enclosing[-1]} and {loop_id} are each inside the other's body")
        if len(enclosing) >= MAX_DEPTH:
            raise _TooDeep(" > ".join((*enclosing, loop_id, "...")))
        walk = self._walk(loop_id)
        core, nodes, inner, depth = set(walk.core), set(walk.nodes), set(), 1
        implied: dict[str, set[str]] = {}  # exits of the loops inside -> those loops
        while pending := (nodes & self._loop_set) - inner - {loop_id}:
            for inner_id in sorted(pending, key=id_key):
                inner.add(inner_id)
                if self.is_parked(inner_id):
                    continue
                inner_body = self._body(inner_id, (*enclosing, loop_id))
                nodes |= inner_body.nodes
                depth = max(depth, inner_body.depth + 1)
                for exit_id in self._loop_parents[inner_id]:
                    implied.setdefault(exit_id, set()).add(inner_id)
            # A loop inside runs whenever its body's inputs change, so what it feeds is part of this loop's core.
            grown = self.graph.descendants(core, implied, self.fixed) - core
            core |= grown
            nodes |= grown | self.graph.ancestors(grown - nodes, stop=self.fixed)
        if loop_id in nodes:
            raise WorkflowError(
                f"loop {loop_id} is inside the body of a loop that is inside its own body {walk.name!r}"
            )
        ports = self._roles(walk.tagged, loop_id)
        problems = port_problems(ports)
        if problems:
            raise PortError([problem.within(f"loop {loop_id}") for problem in problems])
        body = LoopBody(loop_id, walk.name, frozenset(core), frozenset(nodes), tuple(ports), frozenset(inner), depth)
        self._bodies[loop_id] = body
        exits = {port.node_id for port in ports if port.role is not None and port.role.is_exit}
        self._loop_parents[loop_id] = exits
        for exit_id in exits:
            self._loop_children.setdefault(exit_id, set()).add(loop_id)
        return body

    def _walk(self, loop_id: str) -> _Walk:
        """The part of a loop's body its own ports lead to, before the bodies of loops inside are added. Kept, so
        a loop tried again inside several others is walked once."""
        if loop_id not in self._walks:
            name = self.body_name(loop_id)
            tagged = self._tagged.get(name, [])
            if not tagged:
                raise WorkflowError(
                    f"loop {loop_id}: no DiscomfortPort is tagged {name!r}; add {name!r} to the tags of the ports "
                    "where values enter and leave the loop"
                )
            ids = {port.node_id for port in tagged}
            core = ids | self.graph.descendants(ids, stop=self.fixed)
            nodes = core | self.graph.ancestors(core, stop=self.fixed)
            self._walks[loop_id] = _Walk(name, tagged, frozenset(core), frozenset(nodes),
                                         frozenset(nodes & self._loop_set - {loop_id}))  # fmt: skip
        walk = self._walks[loop_id]
        if loop_id in walk.nodes:
            raise self._self_link(loop_id, walk.name, walk.core, walk.nodes)
        return walk

    def _self_link(self, loop_id: str, name: str, core: set[str], nodes: set[str]) -> WorkflowError:
        if loop_id in core:  # downstream of a port: the loop takes a value computed in its own body
            givers = sorted((n for n in self.graph.parents(loop_id) if n in nodes), key=id_key)
            link = f"it takes node {', '.join(givers)}'s output"
        else:
            takers = sorted((n for n in self.graph.children(loop_id) if n in nodes), key=id_key)
            link = f"node {', '.join(takers)} takes its output"
        return WorkflowError(
            f"loop {loop_id} is linked to its own body {name!r}: {link}; values enter and leave a loop through its "
            "ports"
        )

    # --- ports -------------------------------------------------------------------------------------------------

    def _roles(self, ports: list[Port], loop_id: str | None) -> list[Port]:
        return assign_roles(self.graph, ports, loop_id, implied_parents=self._loop_parents,
                            implied_children=self._loop_children)  # fmt: skip

    def tagged(self, name: str) -> list[Port]:
        """The linked ports tagged `name`, without roles: where a body of that name is anchored."""
        return list(self._tagged.get(name, []))

    def body_ports(self, name: str) -> list[Port]:
        """The linked ports tagged `name`, with their roles, as the body of a loop named `name` sees them (used on
        a loop's parked body, where the loop node itself is not)."""
        self.bodies()  # the loops inside come first: chains of a uid may run through them
        return self._roles(self._tagged.get(name, []), None)

    def workflow_ports(self) -> list[Port]:
        """The ports of the workflow's own body, with their roles: every linked port that no loop runs (ports
        tagged with a loop's body name, or inside a loop's core, belong to that loop)."""
        bodies = self.bodies()
        names = set()
        for loop_id in bodies:
            with contextlib.suppress(WorkflowError):  # a loop with no body name claims no port
                names.add(self.body_name(loop_id))
        inside = set().union(*(body.core for body in bodies.values() if isinstance(body, LoopBody)))
        ports = [port for port in self._ports.values()
                 if port.linked and port.node_id not in inside and names.isdisjoint(port.tags)]  # fmt: skip
        return self._roles(ports, None)

    def ports(self) -> list[Port]:
        """Every port, each with its role in the body it belongs to (the first loop, in id order, whose body name
        it is tagged with, else the workflow's own body); unconnected ports and untagged ports running inside a
        loop have no role."""
        placed: dict[str, Port] = {}
        for body in self.bodies().values():
            if isinstance(body, LoopBody):
                for port in body.ports:
                    placed.setdefault(port.node_id, port)
        for port in self.workflow_ports():
            placed.setdefault(port.node_id, port)
        return sorted((placed.get(node_id, port) for node_id, port in self._ports.items()),
                      key=lambda port: id_key(port.node_id))  # fmt: skip

    def interface(self) -> Interface:
        """What the workflow takes and gives (its own body's entries and exits); raises `PortError` naming every
        port at fault, and `WorkflowError` on a cycle or a link to a missing node."""
        order = execution_order(self.graph)
        ports = self.workflow_ports()
        problems = port_problems(ports)
        if problems:
            raise PortError(problems)
        position = {node_id: index for index, node_id in enumerate(order)}
        ports.sort(key=lambda port: position[port.node_id])
        takes = _by_uid(port for port in ports if port.role is not None and port.role.is_entry)
        gives = {port.uid: port for port in ports if port.role is not None and port.role.is_exit}
        return Interface({uid: tuple(found) for uid, found in takes.items()}, gives, tuple(ports))


def find_ports(graph: Mapping[str, Any], port_class: str = PORT_CLASS,
               defs: Mapping[str, Any] | None = None) -> list[Port]:  # fmt: skip
    """Every active DiscomfortPort of an API prompt or UI workflow, in node-id order, with its mode, type, and role
    in the body it belongs to (see `PortGraph.ports`). Muted and bypassed ports are left out: they carry nothing."""
    return PortGraph(graph, defs=defs, port_class=port_class).ports()


def interface(graph: Mapping[str, Any], port_class: str = PORT_CLASS) -> Interface:
    """The uids a workflow takes and gives; raises `PortError` for bad ports, `WorkflowError` for cycles and
    dangling links."""
    return PortGraph(graph, port_class=port_class).interface()


def validate_ports(ports: list[Port]) -> None:
    """Raise one `PortError` naming every port at fault among the ports of one body (see `port_problems`)."""
    problems = port_problems(ports)
    if problems:
        raise PortError(problems)


def execution_order(graph: Mapping[str, Any] | Graph) -> list[str]:
    """Node ids, each after everything that feeds it. Raises `WorkflowError` on a cycle or a dangling link."""
    graph = Graph.of(graph)
    if graph.dangling:
        raise WorkflowError("; ".join(
            f"{f'link {link.id}' if link.id is not None else 'a link'} ({link.origin_id} -> {link.target_id}) names a "
            "node that is not in the workflow" for link in graph.dangling
        ))  # fmt: skip
    return graph.order()


def _by_uid(ports: Any) -> dict[str, list[Port]]:
    grouped: dict[str, list[Port]] = {}
    for port in ports:
        grouped.setdefault(port.uid, []).append(port)
    return grouped
