"""Several workflows into one pipeline: what an earlier workflow gives by uid feeds the later ones that take it.

Each INPUT port of a workflow is linked to the port that gives the same uid in an earlier workflow (its OUTPUT,
or a PASSTHRU when it has no OUTPUT of that uid); both then pass the value through. Node and link ids are
renumbered so nothing collides, and in UI workflows each workflow is laid out below the one before, its groups
kept, so the stitched file opens readably in ComfyUI. Only earlier-to-later links are made, so a stitch cannot
close a cycle; the result is checked all the same.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import WorkflowError
from ..workflow.graph import detect_format, is_link
from .discovery import VALUE, Port, PortMode, execution_order, interface

GAP = 120  # vertical space between stitched workflows, in canvas units


@dataclass(frozen=True)
class Connection:
    giver: tuple[int, Port]  # (workflow index, port)
    taker: tuple[int, Port]


def connections(graphs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[Connection]:
    """Which port feeds which, across workflows; an INPUT uid given by two earlier workflows is ambiguous."""
    interfaces = [interface(graph) for graph in graphs]
    found = []
    for index, current in enumerate(interfaces):
        for uid, takers in current.takes.items():
            givers = [(earlier, interfaces[earlier].gives[uid]) for earlier in range(index)
                      if uid in interfaces[earlier].gives]  # fmt: skip
            if not givers:
                continue
            if len(givers) > 1:
                sources = " and ".join(f"{names[i]} (node {port.node_id})" for i, port in givers)
                raise WorkflowError(f"uid {uid!r} taken by {names[index]} is given by both {sources}; rename one")
            for taker in takers:
                if taker.mode is PortMode.INPUT:
                    found.append(Connection(givers[0], (index, taker)))
    return found


def stitch_api(prompts: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None) -> dict[str, Any]:
    """API prompts into one; node ids become `<position>.<id>` (position from 1) so they stay readable."""
    names = _names(prompts, names, "api", "stitch_api takes API prompts; convert UI workflows first")
    result: dict[str, Any] = {}
    for index, prompt in enumerate(prompts):
        rename = {node_id: f"{index + 1}.{node_id}" for node_id in prompt}
        for node_id, node in prompt.items():
            node = copy.deepcopy(dict(node))
            node["inputs"] = {key: [rename.get(value[0], value[0]), value[1]] if is_link(value) else value
                              for key, value in (node.get("inputs") or {}).items()}  # fmt: skip
            result[rename[node_id]] = node
    for connection in connections(prompts, names):
        giver_index, giver = connection.giver
        taker_index, taker = connection.taker
        result[f"{taker_index + 1}.{taker.node_id}"]["inputs"][VALUE] = [f"{giver_index + 1}.{giver.node_id}", 0]
    execution_order(result)  # raises on a cycle
    return result


def stitch_ui(workflows: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None) -> dict[str, Any]:
    """UI workflows into one UI workflow (v0.4 links), each laid out below the previous one."""
    names = _names(workflows, names, "ui", "stitch_ui takes UI workflows (as ComfyUI saves them)")
    found = connections(workflows, names)
    nodes, links, groups, subgraphs = [], [], [], {}
    node_map: list[dict[str, int]] = []
    next_node, next_link, top = 1, 1, 0.0
    for workflow in workflows:
        renumber = {}
        left, upper, _, lower = _bounds(workflow.get("nodes") or [])
        shift = top - upper
        link_map = {}
        for raw in workflow.get("links") or []:
            link = _link_tuple(raw)
            link_map[link[0]] = next_link
            next_link += 1
        for node in workflow["nodes"]:
            renumber[str(node["id"])] = next_node
            next_node += 1
        for node in workflow["nodes"]:
            node = copy.deepcopy(node)
            node["id"] = renumber[str(node["id"])]
            if isinstance(node.get("pos"), (list, tuple)) and len(node["pos"]) >= 2:
                node["pos"] = [node["pos"][0] - left, node["pos"][1] + shift]
            for socket in node.get("inputs") or []:
                if socket.get("link") is not None:
                    socket["link"] = link_map.get(socket["link"])
            for socket in node.get("outputs") or []:
                if socket.get("links"):
                    socket["links"] = [link_map[old] for old in socket["links"] if old in link_map]
            nodes.append(node)
        for raw in workflow.get("links") or []:
            link_id, origin, origin_slot, target, target_slot, kind = _link_tuple(raw)
            links.append([link_map[link_id], renumber[str(origin)], origin_slot, renumber[str(target)], target_slot,
                          kind])  # fmt: skip
        for group in workflow.get("groups") or []:
            group = copy.deepcopy(group)
            bounding = group.get("bounding")
            if isinstance(bounding, list) and len(bounding) == 4:
                group["bounding"] = [bounding[0] - left, bounding[1] + shift, bounding[2], bounding[3]]
            groups.append(group)
        for subgraph in (workflow.get("definitions") or {}).get("subgraphs") or []:
            subgraphs.setdefault(subgraph["id"], subgraph)
        node_map.append(renumber)
        top += (lower - upper) + GAP
    by_id = {node["id"]: node for node in nodes}
    for connection in found:
        (giver_index, giver), (taker_index, taker) = connection.giver, connection.taker
        origin, target = node_map[giver_index][giver.node_id], node_map[taker_index][taker.node_id]
        kind = giver.type if giver.type != "*" else taker.type
        links.append([next_link, origin, 0, target, 0, kind])
        by_id[origin].setdefault("outputs", [{"name": "value", "type": "*", "links": []}])
        by_id[origin]["outputs"][0].setdefault("links", [])
        by_id[origin]["outputs"][0]["links"] = [*(by_id[origin]["outputs"][0]["links"] or []), next_link]
        sockets = by_id[target].setdefault("inputs", [])
        value_socket = next((s for s in sockets if s.get("name") == VALUE), None)
        if value_socket is None:
            value_socket = {"name": VALUE, "type": "*", "link": None}
            sockets.insert(0, value_socket)
        value_socket["link"] = next_link
        next_link += 1
    stitched = {
        "last_node_id": next_node - 1, "last_link_id": next_link - 1, "nodes": nodes, "links": links,
        "groups": groups, "config": {}, "extra": {"discomfort": {"stitched": list(names)}}, "version": 0.4,
    }  # fmt: skip
    if subgraphs:
        stitched["definitions"] = {"subgraphs": list(subgraphs.values())}
    execution_order(stitched)  # raises on a cycle
    return stitched


def _names(graphs: Sequence[Mapping[str, Any]], names: Sequence[str] | None, kind: str, refusal: str) -> list[str]:
    names = list(names or (f"workflow {i + 1}" for i in range(len(graphs))))
    for name, graph in zip(names, graphs, strict=True):
        if detect_format(graph) != kind:
            raise WorkflowError(f"{name}: {refusal}")
    return names


def _bounds(nodes: Sequence[Mapping[str, Any]]) -> tuple[float, float, float, float]:
    xs, ys, bottoms, rights = [], [], [], []
    for node in nodes:
        pos, size = node.get("pos"), node.get("size")
        if not (isinstance(pos, (list, tuple)) and len(pos) >= 2):
            continue
        width, height = (size[0], size[1]) if isinstance(size, (list, tuple)) and len(size) >= 2 else (200, 100)
        xs.append(pos[0])
        ys.append(pos[1])
        rights.append(pos[0] + width)
        bottoms.append(pos[1] + height)
    if not xs:
        return 0.0, 0.0, 0.0, 0.0
    return min(xs), min(ys), max(rights), max(bottoms)


def _link_tuple(raw: Any) -> tuple[int, Any, int, Any, int, str]:
    if isinstance(raw, Mapping):
        return (
            raw["id"],
            raw["origin_id"],
            raw["origin_slot"],
            raw["target_id"],
            raw["target_slot"],
            raw.get("type", "*"),
        )
    return raw[0], raw[1], raw[2], raw[3], raw[4], raw[5] if len(raw) > 5 else "*"
