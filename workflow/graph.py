"""The two shapes a ComfyUI graph comes in, read the same way.

An *API prompt* maps node ids to ``{"class_type", "inputs"}``; a link is ``[source_id, slot]``. A *UI workflow* is
what the frontend saves: ``nodes`` and ``links``, the links either as v0.4 arrays
``[id, origin, origin_slot, target, target_slot, type]`` or as v1 objects. These helpers turn both into the same
few facts (nodes, their class, their links) so that code above them never branches on the format, and `Graph`
holds those facts once, with the walks up and down the links that port discovery, stitching and planning share.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import WorkflowError

Format = Literal["api", "ui"]

# Node modes in UI workflows: 0 always, 2 never (muted), 4 bypass.
MODE_MUTED = 2
MODE_BYPASSED = 4


def is_link(value: Any) -> bool:
    """True when an API-prompt input value is a link ``[node_id, output_slot]`` rather than a constant."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def detect_format(graph: Any) -> Format:
    """Tell an API prompt from a UI workflow; anything else is a `WorkflowError`."""
    if not isinstance(graph, Mapping):
        raise WorkflowError(f"a workflow must be a JSON object, got {type(graph).__name__}")
    if isinstance(graph.get("nodes"), list):
        return "ui"
    if graph and all(isinstance(node, Mapping) and "class_type" in node for node in graph.values()):
        return "api"
    if not graph:
        raise WorkflowError("the workflow is empty")
    raise WorkflowError(
        "not a ComfyUI workflow: expected a UI workflow (with a 'nodes' list) "
        "or an API prompt (an object of nodes, each with a 'class_type')"
    )


@dataclass(frozen=True)
class Link:
    """One edge of a graph, whatever format it came from. Node ids are strings, as in API prompts."""

    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int | str  # a slot index in UI workflows, an input name in API prompts
    type: str = "*"
    id: int | None = None


def parse_ui_link(raw: Any) -> Link:
    """One link of a UI workflow: a v0.4 array ``[id, origin, origin_slot, target, target_slot, type]`` or a v1
    object. The one place a UI link is read."""
    if isinstance(raw, (list, tuple)):
        if len(raw) < 5:
            raise WorkflowError(
                f"malformed link {_short(raw)}: expected [id, origin, origin_slot, target, target_slot, type]"
            )
        link_id, origin, origin_slot, target, target_slot = raw[:5]
        link_type = raw[5] if len(raw) > 5 else "*"
    elif isinstance(raw, Mapping):
        try:
            link_id, origin, origin_slot = raw["id"], raw["origin_id"], raw["origin_slot"]
            target, target_slot = raw["target_id"], raw["target_slot"]
        except KeyError as missing:
            raise WorkflowError(f"malformed link {_short(raw)}: missing {missing}") from None
        link_type = raw.get("type", "*")
    else:
        raise WorkflowError(f"malformed link {_short(raw)}")
    try:
        return Link(str(origin), int(origin_slot), str(target), int(target_slot), _type_name(link_type), link_id)
    except (TypeError, ValueError):
        raise WorkflowError(f"malformed link {_short(raw)}: slots must be numbers") from None


def ui_links(workflow: Mapping[str, Any]) -> list[Link]:
    """The links of a UI workflow, accepting v0.4 arrays and v1 objects alike."""
    return [parse_ui_link(raw) for raw in workflow.get("links") or []]


def api_links(prompt: Mapping[str, Any]) -> list[Link]:
    """The links of an API prompt, one per linked input."""
    return [
        Link(value[0], value[1], node_id, name)
        for node_id, node in prompt.items()
        for name, value in (node.get("inputs") or {}).items()
        if is_link(value)
    ]


@dataclass(frozen=True)
class NodeView:
    """A node reduced to what graph functions need: its id, class, widget values and UI mode."""

    id: str
    class_type: str
    widgets: Mapping[str, Any] | list[Any]
    mode: int = 0
    title: str | None = None
    input_names: tuple[str, ...] = ()  # UI workflows: input name by slot index

    def input_name(self, slot: int | str) -> str | None:
        """The name of the input a link targets; API links already carry it, UI links carry a slot index."""
        if isinstance(slot, str):
            return slot
        return self.input_names[slot] if 0 <= slot < len(self.input_names) else None


def nodes_of(graph: Mapping[str, Any]) -> Iterator[NodeView]:
    """Every node of a UI workflow or API prompt. API prompts carry widget values by name, UI ones by position."""
    if detect_format(graph) == "api":
        for node_id, node in graph.items():
            yield NodeView(
                str(node_id), node["class_type"], node.get("inputs") or {}, 0, (node.get("_meta") or {}).get("title")
            )
        return
    for node in graph["nodes"]:
        if not isinstance(node, Mapping) or "id" not in node or "type" not in node:
            raise WorkflowError(f"malformed node {_short(node)}: a UI node needs an 'id' and a 'type'")
        names = tuple(str(slot.get("name", "")) for slot in node.get("inputs") or [] if isinstance(slot, Mapping))
        widgets = node.get("widgets_values") or []
        yield NodeView(str(node["id"]), node["type"], widgets, int(node.get("mode") or 0), node.get("title"), names)


def links_of(graph: Mapping[str, Any]) -> list[Link]:
    """Every link of a UI workflow or API prompt."""
    return ui_links(graph) if detect_format(graph) == "ui" else api_links(graph)


def _type_name(value: Any) -> str:
    # The frontend writes wildcard links as "*" and sometimes as 0 or an empty string.
    return value if isinstance(value, str) and value else "*"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def id_key(node_id: str) -> tuple:
    """Sorts node ids as people read them: numbers as numbers, subgraph ids ("12:3") part by part, names after."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in str(node_id).split(":"))


class Graph:
    """The nodes of a workflow or prompt and the links between them, read once, with what lies up- and downstream.

    Every question about reachability goes through `ancestors` and `descendants`: one breadth-first walk over
    adjacency sets built in a single pass over the links, so each call costs at most the size of the graph.
    Muted and bypassed UI nodes are left out, with their links (ComfyUI runs neither). Links naming a node that is
    not there are kept in `dangling`, for the callers that must refuse them.
    """

    def __init__(self, nodes: Iterable[NodeView], links: Iterable[Link]):
        self.nodes: dict[str, NodeView] = {}
        for node in nodes:
            self.nodes[node.id] = node
        self.links: list[Link] = []
        self.dangling: list[Link] = []
        self._parents: dict[str, set[str]] = {node_id: set() for node_id in self.nodes}
        self._children: dict[str, set[str]] = {node_id: set() for node_id in self.nodes}
        self._incoming: dict[str, list[Link]] = {}
        self._outgoing: dict[str, list[Link]] = {}
        for link in links:
            if link.origin_id not in self.nodes or link.target_id not in self.nodes:
                self.dangling.append(link)
                continue
            self.links.append(link)
            self._parents[link.target_id].add(link.origin_id)
            self._children[link.origin_id].add(link.target_id)
            self._incoming.setdefault(link.target_id, []).append(link)
            self._outgoing.setdefault(link.origin_id, []).append(link)

    @classmethod
    def of(cls, graph: Mapping[str, Any] | Graph) -> Graph:
        """The graph of an API prompt or a UI workflow (its active nodes); a `Graph` comes back as it is."""
        if isinstance(graph, Graph):
            return graph
        kind = detect_format(graph)
        nodes = list(nodes_of(graph))
        active = [node for node in nodes if node.mode not in (MODE_MUTED, MODE_BYPASSED)]
        present = {node.id for node in nodes}
        skipped = present - {node.id for node in active}
        links = ui_links(graph) if kind == "ui" else api_links(graph)
        # A link to a muted node goes with it; a link to no node at all stays, to be reported as dangling.
        return cls(
            active,
            [
                link
                for link in links
                if not ({link.origin_id, link.target_id} <= present and {link.origin_id, link.target_id} & skipped)
            ],
        )

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def parents(self, node_id: str) -> set[str]:
        return self._parents.get(node_id, set())

    def children(self, node_id: str) -> set[str]:
        return self._children.get(node_id, set())

    def incoming(self, node_id: str) -> list[Link]:
        """The links into a node."""
        return self._incoming.get(node_id, [])

    def outgoing(self, node_id: str) -> list[Link]:
        """The links out of a node."""
        return self._outgoing.get(node_id, [])

    def ancestors(self, start: Iterable[str], also: Mapping[str, set[str]] | None = None,
                  stop: Collection[str] = ()) -> set[str]:  # fmt: skip
        """Every node upstream of `start` (not `start` itself, unless a cycle leads back to it). `also` adds
        parents no link shows (node -> nodes it depends on), such as a loop's dependence on its body; nodes in
        `stop` are neither entered nor passed through."""
        return _walk(start, self._parents, also, stop)

    def descendants(self, start: Iterable[str], also: Mapping[str, set[str]] | None = None,
                    stop: Collection[str] = ()) -> set[str]:  # fmt: skip
        """Every node downstream of `start`; `also` adds children no link shows (node -> nodes depending on it)."""
        return _walk(start, self._children, also, stop)

    def order(self) -> list[str]:
        """Node ids, each after everything that feeds it (ties in id order). Raises `WorkflowError` on a cycle."""
        waiting = {node_id: len(parents) for node_id, parents in self._parents.items()}
        ready = [(id_key(node_id), node_id) for node_id, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, node_id = heapq.heappop(ready)
            order.append(node_id)
            for child in self._children[node_id]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, (id_key(child), child))
        if len(order) < len(self.nodes):
            raise WorkflowError(f"the workflow has a cycle through nodes {' -> '.join(self._cycle(set(order)))}")
        return order

    def _cycle(self, ordered: set[str]) -> list[str]:
        # Every node left unordered waits on another unordered one: walking parents from any of them must repeat.
        node_id = min((n for n in self.nodes if n not in ordered), key=id_key)
        path: list[str] = []
        seen: dict[str, int] = {}
        while node_id not in seen:
            seen[node_id] = len(path)
            path.append(node_id)
            node_id = min((p for p in self._parents[node_id] if p not in ordered), key=id_key)
        cycle = path[seen[node_id] :]
        cycle.reverse()  # walked against the links; report them in the direction values flow
        first = cycle.index(min(cycle, key=id_key))
        cycle = cycle[first:] + cycle[:first]
        return [*cycle, cycle[0]]


def _walk(start: Iterable[str], edges: Mapping[str, set[str]], also: Mapping[str, set[str]] | None,
          stop: Collection[str] = ()) -> set[str]:  # fmt: skip
    seen: set[str] = set()
    queue = deque(start)
    while queue:
        current = queue.popleft()
        for nxt in (*edges.get(current, ()), *(also.get(current, ()) if also else ())):
            if nxt not in seen and nxt not in stop:
                seen.add(nxt)
                queue.append(nxt)
    return seen
