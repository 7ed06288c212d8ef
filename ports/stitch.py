"""Several workflows into one pipeline: what an earlier workflow gives by uid feeds the later ones that take it.

Each entry port of a workflow (see `ports.model`) is linked from the exit of the same uid in the nearest earlier
workflow that gives it; a PASSTHRU entry's own feeder, its value when the file runs alone, is unlinked. The
stitched ports then pass the value along one chain per uid, so the pipeline's entry of a uid is the first file's,
its exit the last file's, and each file computes on what the one before gave. Node and link ids are renumbered so
nothing collides, and in UI workflows each workflow is laid out below the one before, its groups kept, so the
stitched file opens readably in ComfyUI. Only earlier-to-later links are made, so a stitch cannot close a cycle;
the result is checked as one body all the same.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PortError, WorkflowError
from ..workflow.graph import detect_format, is_link, ui_links
from .discovery import ITERATION_UID, VALUE, Port
from .model import interface

GAP = 120  # vertical space between stitched workflows, in canvas units


@dataclass(frozen=True)
class Connection:
    giver: tuple[int, Port]  # (workflow index, its exit port)
    taker: tuple[int, Port]  # (workflow index, its entry port)


def connections(graphs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[Connection]:
    """Which port feeds which, across workflows: each entry of a uid from the latest earlier exit of that uid. The
    reserved uid `iteration` is never linked: every workflow's iteration port takes the index itself."""
    found = []
    latest: dict[str, tuple[int, Port]] = {}
    for index, (name, graph) in enumerate(zip(names, graphs, strict=True)):
        try:
            current = interface(graph)
        except PortError as error:
            raise PortError([f"{name}: {problem}" for problem in error.problems]) from None
        except WorkflowError as error:
            raise WorkflowError(f"{name}: {error}") from None
        for uid, takers in current.takes.items():
            if uid in latest and uid != ITERATION_UID:
                found.extend(Connection(latest[uid], (index, taker)) for taker in takers)
        for uid, giver in current.gives.items():
            latest[uid] = (index, giver)
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
    interface(result)  # one body: raises on a cycle, or on a uid that now has two exits
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
        parsed = ui_links(workflow)
        for link in parsed:
            link_map[link.id] = next_link
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
        for link in parsed:
            links.append([link_map[link.id], renumber[link.origin_id], link.origin_slot, renumber[link.target_id],
                          link.target_slot, link.type])  # fmt: skip
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
        by_id[origin].setdefault("outputs", [{"name": "value", "type": "*", "links": []}])
        by_id[origin]["outputs"][0].setdefault("links", [])
        by_id[origin]["outputs"][0]["links"] = [*(by_id[origin]["outputs"][0]["links"] or []), next_link]
        sockets = by_id[target].setdefault("inputs", [])
        value_socket = next((s for s in sockets if s.get("name") == VALUE), None)
        if value_socket is None:
            value_socket = {"name": VALUE, "type": "*", "link": None}
            sockets.insert(0, value_socket)
        if value_socket.get("link") is not None:  # a PASSTHRU entry: its own feeder gives way to the pipeline
            _unlink(nodes, links, value_socket["link"])
        links.append([next_link, origin, 0, target, sockets.index(value_socket), kind])
        value_socket["link"] = next_link
        next_link += 1
    stitched = {
        "last_node_id": next_node - 1, "last_link_id": next_link - 1, "nodes": nodes, "links": links,
        "groups": groups, "config": {}, "extra": {"discomfort": {"stitched": list(names)}}, "version": 0.4,
    }  # fmt: skip
    if subgraphs:
        stitched["definitions"] = {"subgraphs": list(subgraphs.values())}
    interface(stitched)  # one body: raises on a cycle, or on a uid that now has two exits
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


def _unlink(nodes: list[dict[str, Any]], links: list[list[Any]], link_id: int) -> None:
    """Remove link `link_id` from a stitched UI workflow: from its list, and from its origin's output."""
    link = next(entry for entry in links if entry[0] == link_id)
    links.remove(link)
    origin = next(node for node in nodes if node["id"] == link[1])
    socket = (origin.get("outputs") or [])[link[2]]
    socket["links"] = [other for other in socket.get("links") or [] if other != link_id]
