"""Compiling an inline loop into a plan: the body prompt to run each iteration, and where values go in and out.

Pure functions over API prompts; nothing here imports ComfyUI. The rules (also in the README):

- A loop's body is named by its `body` widget; the DiscomfortPorts whose tags include that name are its ports.
- Entry ports (INPUT or PASSTHRU) take a value each iteration; exit ports (OUTPUT) give one. A uid with both is
  *carried*: what its exit gave in iteration i enters through its entries in iteration i+1.
- In iteration 0 an entry takes the loop node's input for its uid if linked, else what feeds the (PASSTHRU) port.
- The body is every node downstream of an entry, the exits, the bodies of loops found among them, and every
  ancestor of those: a loader feeding the body runs inside it, once, cached by the loop's private executor.
- Before a prompt runs, `prepare_prompt` moves each loop's body into the loop node, so that only the loop runs it.
- Entries become carry-in nodes and exits carry-out sinks before validation (no injection during execution);
  each carries a token that changes when its value does, so exactly what depends on carried values re-runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import PortError, WorkflowError
from ..ports.discovery import VALUE, Port, PortMode, find_ports, validate_ports
from ..workflow.graph import is_link

LOOP_CLASS = "DiscomfortLoop"
# Node types whose body is a region of the same graph, named by a `body` widget and tagged ports.
LOOP_CLASSES = frozenset({LOOP_CLASS, "DiscomfortFolderLoop"})
CARRY_IN = "DiscomfortCarryIn"
CARRY_OUT = "DiscomfortCarryOut"
ITERATION_UID = "iteration"  # reserved: an entry port with this uid takes the 0-based iteration index
TOKEN = "token"
PARKED = "discomfort"  # key of a loop node's dict that holds its body once the prompt is prepared
INITIAL = "initial"


@dataclass(frozen=True)
class LoopPlan:
    """A compiled loop. `prompt` is the rewritten body, its carry-in/out tokens left blank for `instantiate`."""

    loop_id: str
    body_name: str
    prompt: dict[str, Any]
    entries: Mapping[str, tuple[str, ...]]  # uid -> carry-in node ids
    exits: Mapping[str, str]  # uid -> carry-out node id
    fed: frozenset[str]  # carry-in node ids that have a feeder for their iteration-0 value
    fingerprint: str = field(compare=False)

    @property
    def carried(self) -> tuple[str, ...]:
        return tuple(uid for uid in self.entries if uid in self.exits)

    def uid_has_feeder(self, uid: str) -> bool:
        return all(node_id in self.fed for node_id in self.entries.get(uid, ()))

    def instantiate(self, template: Mapping[str, Any], tokens: Mapping[str, str]) -> dict[str, Any]:
        """A fresh copy of `template` (the validated body) with `tokens` (node id -> token) written in.

        ComfyUI writes IS_CHANGED results into each node's dict, so every node dict is copied; input dicts only
        where a token changes. A carry node may sit in the parked body of a loop nested in this one (it feeds only
        that loop), so parked bodies get the tokens too.
        """
        prompt = {node_id: dict(node) for node_id, node in template.items()}
        _write_tokens(prompt, tokens)
        return prompt

    def without_feeders(self, template: Mapping[str, Any], feeding: Iterable[str]) -> dict[str, Any]:
        """`template` with the link to its feeder cut from every carry-in whose uid is not in `feeding`.

        Once a carry-in takes the loop's value, what feeds it is not its ancestor any more, so ComfyUI does not
        walk it when it computes cache signatures (over every ancestor, every iteration). The feeders stay in
        the prompt: the private cache keeps their outputs for the loop's next run. (A carry-in parked in the
        body of a loop nested in this one keeps its link: it is not walked from here.)
        """
        feeding = set(feeding)
        prompt = dict(template)
        for uid, node_ids in self.entries.items():
            for node_id in node_ids:
                if uid not in feeding and node_id in self.fed and node_id in prompt:
                    node = prompt[node_id]
                    prompt[node_id] = {**node, "inputs": {k: v for k, v in node["inputs"].items() if k != INITIAL}}
        return prompt


def _write_tokens(prompt: dict[str, Any], tokens: Mapping[str, str]) -> None:
    for node_id, token in tokens.items():
        node = prompt.get(node_id)
        if node is not None:
            prompt[node_id] = {**node, "inputs": {**node["inputs"], TOKEN: token}}
    for node_id, node in prompt.items():
        parked = node.get(PARKED)
        if parked and parked.get("body") and not tokens.keys().isdisjoint(_nested_ids(parked["body"])):
            body = dict(parked["body"])
            _write_tokens(body, tokens)
            prompt[node_id] = {**node, PARKED: {**parked, "body": body}}


def _nested_ids(prompt: Mapping[str, Any]) -> set[str]:
    ids = set(prompt)
    for node in prompt.values():
        parked = node.get(PARKED)
        if parked and parked.get("body"):
            ids |= _nested_ids(parked["body"])
    return ids


def prepare_prompt(prompt: Mapping[str, Any]) -> dict[str, Any]:
    """Move the body of every outermost loop into its loop node, so that the prompt's own run never executes it.

    ComfyUI runs every output node of a prompt and everything upstream of it; a SaveImage inside a body, and the
    loader feeding it, would run once outside the loop too. So before validation each loop node's dict gets its
    body under `PARKED`, and body nodes that nothing outside a body needs leave the prompt. Loops inside a body are
    prepared in turn when their enclosing loop plans its body. Returns a new dict; a prompt without loops comes
    back as it is. A loop whose body cannot be worked out keeps its graph and carries the error, which it raises
    when it runs.
    """
    loops = [
        node_id
        for node_id, node in prompt.items()
        if isinstance(node, Mapping) and node.get("class_type") in LOOP_CLASSES
    ]
    if not loops:
        return dict(prompt)
    graph = _Adjacency(prompt)
    bodies: dict[str, set[str]] = {}
    errors: dict[str, str] = {}
    for loop_id in loops:
        if PARKED in prompt[loop_id]:
            continue  # prepared already
        try:
            bodies[loop_id] = _body_nodes(prompt, graph, loop_id, _body_name(prompt[loop_id], loop_id), ())
        except WorkflowError as error:
            errors[loop_id] = str(error)
    outermost = [loop_id for loop_id in bodies if not any(loop_id in body for body in bodies.values())]
    hidden = set().union(*(bodies[loop_id] for loop_id in outermost))
    kept = set(prompt) - hidden
    kept |= graph.ancestors(kept)  # a loader shared with the rest of the graph stays for it too
    prepared = {node_id: node for node_id, node in prompt.items() if node_id in kept}
    for loop_id in outermost:
        body = {node_id: prompt[node_id] for node_id in sorted(bodies[loop_id], key=_id_key)}
        prepared[loop_id] = {**prompt[loop_id], PARKED: {"body": body}}
    for loop_id, message in errors.items():
        if loop_id in prepared:
            prepared[loop_id] = {**prompt[loop_id], PARKED: {"error": message}}
    return prepared


def plan_loop(loop_node: Mapping[str, Any], loop_id: str) -> LoopPlan:
    """Compile a loop node of a prepared prompt (see `prepare_prompt`) into the plan the engine runs."""
    parked = loop_node.get(PARKED)
    if parked is None:
        raise WorkflowError(f"loop {loop_id}: its prompt was not prepared (discomfort.executor.plan.prepare_prompt)")
    if parked.get("error"):
        raise WorkflowError(parked["error"])
    body_name = _body_name(loop_node, loop_id)
    return _compile(parked["body"], body_ports(parked["body"], body_name), loop_id, body_name)


def plan_workflow(prompt: Mapping[str, Any], name: str = "workflow") -> LoopPlan:
    """A whole workflow (or a stitched pipeline) as a loop body: every linked port, whatever its tags, is its
    port. Loops inside it keep their own tagged bodies."""
    prepared = prepare_prompt(prompt)
    ports = [p for p in find_ports(prepared) if p.mode is not PortMode.UNCONNECTED]
    problems = _port_problems(ports)
    if problems:
        raise PortError([f"{name}: {problem}" for problem in problems])
    return _compile(prepared, ports, name, name)


def _compile(source: Mapping[str, Any], ports: list[Port], loop_id: str, body_name: str) -> LoopPlan:
    body = {node_id: _copy_node(node) for node_id, node in source.items()}
    entries: dict[str, list[str]] = {}
    exits: dict[str, str] = {}
    fed = set()
    for port in ports:
        value = (source[port.node_id].get("inputs") or {}).get(VALUE)
        if port.takes:
            inputs: dict[str, Any] = {TOKEN: ""}
            if is_link(value):
                inputs[INITIAL] = list(value)
                fed.add(port.node_id)
            body[port.node_id] = _internal_node(CARRY_IN, inputs, port)
            entries.setdefault(port.uid, []).append(port.node_id)
        elif port.mode is PortMode.OUTPUT:
            body[port.node_id] = _internal_node(CARRY_OUT, {TOKEN: "", VALUE: list(value)}, port)
            exits[port.uid] = port.node_id
    body = prepare_prompt(body)  # loops inside this body get their own bodies parked the same way
    return LoopPlan(
        loop_id=loop_id,
        body_name=body_name,
        prompt=body,
        entries={uid: tuple(ids) for uid, ids in entries.items()},
        exits=exits,
        fed=frozenset(fed),
        fingerprint=fingerprint(body),
    )


def _body_name(loop_node: Mapping[str, Any], loop_id: str) -> str:
    name = (loop_node.get("inputs") or {}).get("body")
    if not isinstance(name, str) or not name.strip():
        raise WorkflowError(f"loop {loop_id}: the body name is empty; name it and tag the body's ports with it")
    return name.strip()


def body_ports(prompt: Mapping[str, Any], body_name: str) -> list[Port]:
    """The ports of the body named `body_name`: those tagged with it and linked to something."""
    return [p for p in find_ports(prompt) if body_name in p.tags and p.mode is not PortMode.UNCONNECTED]


def body_nodes(prompt: Mapping[str, Any], loop_id: str, body_name: str) -> set[str]:
    """Every node the body of loop `loop_id` needs (see the module docstring). Raises if the loop feeds itself."""
    return _body_nodes(prompt, _Adjacency(prompt), loop_id, body_name, ())


def _body_nodes(
    prompt: Mapping[str, Any], graph: _Adjacency, loop_id: str, body_name: str, enclosing: tuple[str, ...]
) -> set[str]:
    ports = body_ports(prompt, body_name)
    if not ports:
        raise WorkflowError(
            f"loop {loop_id}: no DiscomfortPort is tagged {body_name!r}; add {body_name!r} to the tags of the ports "
            "where values enter and leave the loop"
        )
    problems = [f"loop {loop_id}: {problem}" for problem in _port_problems(ports)]
    if problems:
        raise PortError(problems)
    entries = [p.node_id for p in ports if p.takes]
    exits = [p.node_id for p in ports if p.mode is PortMode.OUTPUT]
    seed = set(entries) | graph.descendants(entries) | set(exits)
    nodes = graph.ancestors(seed) | seed
    if loop_id in nodes:
        if loop_id in seed:  # downstream of an entry: the loop takes a value computed in its own body
            givers = sorted((n for n in graph.parents[loop_id] if n in nodes), key=_id_key)
            link = f"it takes node {', '.join(givers)}'s output"
        else:
            takers = sorted((n for n in graph.children[loop_id] if n in nodes), key=_id_key)
            link = f"node {', '.join(takers)} takes its output"
        raise WorkflowError(
            f"loop {loop_id} is linked to its own body {body_name!r}: {link}; values enter and leave a loop through "
            "its ports"
        )
    # A loop inside the body reads its own body from the prompt it runs in, so that body comes along too.
    done: set[str] = set()
    while inner_loops := {n for n in nodes if prompt[n].get("class_type") in LOOP_CLASSES} - done:
        for inner in sorted(inner_loops, key=_id_key):
            done.add(inner)
            if inner in enclosing:
                raise WorkflowError(f"loops {loop_id} and {inner} are each inside the other's body")
            inner_name = (prompt[inner].get("inputs") or {}).get("body")
            if isinstance(inner_name, str) and inner_name.strip():
                extra = _body_nodes(prompt, graph, inner, inner_name.strip(), (*enclosing, loop_id))
                nodes |= extra | graph.ancestors(extra)
    if loop_id in nodes:
        raise WorkflowError(f"loop {loop_id} is inside the body of a loop that is inside its own body {body_name!r}")
    return nodes


def ancestors(prompt: Mapping[str, Any], start: Iterable[str]) -> set[str]:
    """Every node upstream of the nodes `start` (not including them)."""
    return _Adjacency(prompt).ancestors(start)


def fingerprint(prompt: Mapping[str, Any]) -> str:
    """A stable hash of a body: equal for the same graph and widget values, different when either changes."""
    text = json.dumps(prompt, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _port_problems(ports: Iterable[Port]) -> list[str]:
    ports = list(ports)
    problems = []
    try:
        validate_ports(ports)
    except PortError as error:
        problems.extend(error.problems)
    for port in ports:
        if port.uid == ITERATION_UID and port.mode is PortMode.OUTPUT:
            problems.append(f"OUTPUT port {port.node_id} uses the reserved uid {ITERATION_UID!r}")
    return problems


def _internal_node(class_type: str, inputs: dict[str, Any], port: Port) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": f"{port.uid} ({port.mode.value} port)"}}


def _copy_node(node: Mapping[str, Any]) -> dict[str, Any]:
    copy = dict(node)
    copy["inputs"] = dict(node.get("inputs") or {})
    return copy


def _id_key(node_id: str) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in node_id.split(":"))


class _Adjacency:
    """Parents and children of every node of an API prompt."""

    def __init__(self, prompt: Mapping[str, Any]):
        self.parents: dict[str, set[str]] = {node_id: set() for node_id in prompt}
        self.children: dict[str, set[str]] = {node_id: set() for node_id in prompt}
        for node_id, node in prompt.items():
            for value in (node.get("inputs") or {}).values():
                if is_link(value) and value[0] in prompt:
                    self.parents[node_id].add(value[0])
                    self.children[value[0]].add(node_id)

    def descendants(self, start: Iterable[str]) -> set[str]:
        return _walk(start, self.children)

    def ancestors(self, start: Iterable[str]) -> set[str]:
        return _walk(start, self.parents)


def _walk(start: Iterable[str], edges: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen
