"""The two shapes a ComfyUI graph comes in, read the same way.

An *API prompt* maps node ids to ``{"class_type", "inputs"}``; a link is ``[source_id, slot]``. A *UI workflow* is
what the frontend saves: ``nodes`` and ``links``, the links either as v0.4 arrays
``[id, origin, origin_slot, target, target_slot, type]`` or as v1 objects. These helpers turn both into the same
few facts (nodes, their class, their links) so that code above them never branches on the format.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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


def ui_links(workflow: Mapping[str, Any]) -> list[Link]:
    """The links of a UI workflow, accepting v0.4 arrays and v1 objects alike."""
    links = []
    for raw in workflow.get("links") or []:
        if isinstance(raw, (list, tuple)):
            if len(raw) < 5:
                raise WorkflowError(
                    f"malformed link {raw!r}: expected [id, origin, origin_slot, target, target_slot, type]"
                )
            link_id, origin, origin_slot, target, target_slot = raw[:5]
            link_type = raw[5] if len(raw) > 5 else "*"
        elif isinstance(raw, Mapping):
            try:
                link_id, origin, origin_slot = raw["id"], raw["origin_id"], raw["origin_slot"]
                target, target_slot = raw["target_id"], raw["target_slot"]
            except KeyError as missing:
                raise WorkflowError(f"malformed link {raw!r}: missing {missing}") from None
            link_type = raw.get("type", "*")
        else:
            raise WorkflowError(f"malformed link {raw!r}")
        links.append(Link(str(origin), int(origin_slot), str(target), int(target_slot), _type_name(link_type), link_id))
    return links


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
