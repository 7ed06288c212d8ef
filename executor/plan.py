"""Compiling a loop into a plan: the body prompt to run each iteration, and where values go in and out.

Pure functions over API prompts; nothing here imports ComfyUI. What a body is, and what each of its ports does,
comes from the one port model (`ports.model`, rules in its docstring and the README); here it becomes a prompt:

- Before a prompt runs, `prepare_prompt` moves each loop's body into the loop node (it is *parked* there), so that
  only the loop runs it.
- Entry ports become carry-in nodes and exits carry-out sinks before validation (no injection during execution);
  each carries a token that changes when its value does, so exactly what depends on carried values re-runs. Ports
  between an entry and its exit stay what they are: plain pass-throughs.
- A uid is *carried* when its exit lies downstream of its entry: what the exit gave in iteration i enters through
  the entries in iteration i+1. In iteration 0 an entry takes the loop's input for its uid, else what feeds it.
- Plans are cached by the structure of the body (`PlanCache`), so a loop nested in another is compiled once, not
  on every iteration of the loop around it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import PortError, Problem, WorkflowError
from ..ports.discovery import ITERATION_UID, VALUE, Port, Role, parse_tags, port_problems
from ..ports.model import LOOP_CLASSES, PARKED, LoopBody, PortGraph
from ..workflow.graph import id_key, is_link
from . import compat

LOOP_CLASS = "DiscomfortLoop"
CARRY_IN = "DiscomfortCarryIn"
CARRY_OUT = "DiscomfortCarryOut"
CARRY_CLASSES = frozenset({CARRY_IN, CARRY_OUT})
CHECK = "DiscomfortCheck"  # stands for a node at fault, so ComfyUI's validation reports it (executor/checks.py)
TOKEN = "token"
INITIAL = "initial"
EXIT_SUFFIX = ".exit"  # the carry-out added after a carry-in whose port is also its uid's exit
FEED_SUFFIX = ".feed"  # an entry port standing for a node that stays outside the body (`native_loop_nodes`)
FEED_INPUT = "discomfort.feed:"  # the loop node's input that feeds it (+ its uid)
PORT = "DiscomfortPort"

__all__ = ["CARRY_IN", "CARRY_OUT", "INITIAL", "ITERATION_UID", "LOOP_CLASSES", "PARKED", "TOKEN", "LoopPlan",
           "PlanCache", "fingerprint", "plan_loop", "plan_workflow", "prepare_prompt"]  # fmt: skip


@dataclass(frozen=True)
class LoopPlan:
    """A compiled loop. `prompt` is the rewritten body, its own carry tokens left blank for `instantiate`."""

    loop_id: str
    body_name: str
    prompt: dict[str, Any]
    entries: Mapping[str, tuple[str, ...]]  # uid -> carry-in node ids
    exits: Mapping[str, str]  # uid -> carry-out node id
    carried: tuple[str, ...]  # uids whose exit lies downstream of their entry: fed back each iteration
    fed: frozenset[str]  # carry-in node ids that have a feeder for their iteration-0 value
    fingerprint: str = field(compare=False)  # of the body's structure: equal for equal graphs and widget values

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

    def shown_ids(self) -> frozenset[str]:
        """The ids of the body's nodes at any depth, the internal sinks added here left out: the ids of the graph
        the body was parked from."""
        return frozenset(node_id for node_id in nested_ids(self.prompt)
                         if not node_id.endswith((EXIT_SUFFIX, FEED_SUFFIX)))  # fmt: skip

    def enclosing_tokens(self) -> dict[str, str]:
        """The tokens of carry nodes of the loops around this one that its body holds (node id -> token)."""
        own = {node_id for ids in self.entries.values() for node_id in ids} | set(self.exits.values())
        return {node_id: token for node_id, token in carry_tokens(self.prompt).items() if node_id not in own}

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


class PlanCache:
    """Compiled plans by loop and body structure, so a loop run again (an inner loop, once per iteration of the
    loop around it) is not compiled again. Tokens of the enclosing loops' carry nodes are not structure: a cached
    plan gets the current ones written in."""

    def __init__(self, size: int = 32):
        self.size = size
        self._plans: OrderedDict[tuple[str, str], LoopPlan] = OrderedDict()
        self.compiled = 0  # how many plans this cache had to compile (for tests and benchmarks)

    def plan_loop(self, loop_node: Mapping[str, Any], loop_id: str) -> LoopPlan:
        body = _parked_body(loop_node, loop_id)
        key = (loop_id, fingerprint({"loop": loop_node.get("inputs", {}).get("body"), "body": body}))
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_loop(loop_node, loop_id)
            self.compiled += 1
            if self.size:
                self._plans[key] = plan
                while len(self._plans) > self.size:
                    self._plans.popitem(last=False)
            return plan
        self._plans.move_to_end(key)
        tokens = carry_tokens(body)
        return replace(plan, prompt=plan.instantiate(plan.prompt, tokens)) if tokens else plan


def carry_tokens(prompt: Mapping[str, Any]) -> dict[str, str]:
    """The token of every carry node in `prompt`, parked bodies included (node id -> token)."""
    tokens = {}
    for node_id, node in prompt.items():
        if node.get("class_type") in CARRY_CLASSES:
            tokens[node_id] = (node.get("inputs") or {}).get(TOKEN, "")
        parked = node.get(PARKED)
        if parked and parked.get("body"):
            tokens.update(carry_tokens(parked["body"]))
    return tokens


def _write_tokens(prompt: dict[str, Any], tokens: Mapping[str, str]) -> None:
    for node_id, token in tokens.items():
        node = prompt.get(node_id)
        if node is not None:
            prompt[node_id] = {**node, "inputs": {**node["inputs"], TOKEN: token}}
    for node_id, node in prompt.items():
        parked = node.get(PARKED)
        if parked and parked.get("body") and not tokens.keys().isdisjoint(nested_ids(parked["body"])):
            body = dict(parked["body"])
            _write_tokens(body, tokens)
            prompt[node_id] = {**node, PARKED: {**parked, "body": body}}


def nested_ids(prompt: Mapping[str, Any]) -> set[str]:
    """The ids of `prompt`'s nodes and of the nodes parked in its loops, at any depth."""
    ids = set(prompt)
    for node in prompt.values():
        parked = node.get(PARKED)
        if parked and parked.get("body"):
            ids |= nested_ids(parked["body"])
    return ids


def prepare_prompt(prompt: Mapping[str, Any]) -> dict[str, Any]:
    """Move the body of every outermost loop into its loop node, so that the prompt's own run never executes it.

    ComfyUI runs every output node of a prompt and everything upstream of it; a SaveImage inside a body, and the
    loader feeding it, would run once outside the loop too. So before validation each loop node's dict gets its
    body under `PARKED`, and body nodes that nothing outside a body needs leave the prompt. Loops inside a body are
    prepared in turn when their enclosing loop plans its body. Returns a new dict; a prompt without loops comes
    back as it is. A loop that cannot run (see `checks`) and the nodes at fault become checks that fail validation,
    saying why. Takes time in proportion to the prompt's size (ports.model); nests deeper than MAX_DEPTH are
    refused at that depth.
    """
    # Malformed entries are left for ComfyUI's validation to report; they take no part in any body.
    nodes = {node_id: node for node_id, node in prompt.items() if isinstance(node, Mapping) and "class_type" in node}
    if not any(node["class_type"] in LOOP_CLASSES for node in nodes.values()):
        return dict(prompt)
    model = PortGraph(nodes, fixed=native_loop_nodes(nodes))
    bodies = model.bodies()
    refused: dict[str, WorkflowError] = {}  # loops that cannot run, and why
    for loop_id, body in bodies.items():
        if isinstance(body, WorkflowError):
            refused[loop_id] = body
        elif problems := settings_problems(loop_id, nodes[loop_id].get("inputs") or {}, body):
            refused[loop_id] = WorkflowError("; ".join(map(str, problems)), faults={loop_id: list(map(str, problems))})
    # A loop that cannot run takes what it would have run with it: its save nodes (and loops) must not run alone.
    unrun = set().union(*(model.reach(loop_id) for loop_id in refused))
    planned = {loop_id: body for loop_id, body in bodies.items() if isinstance(body, LoopBody)}
    unrun = unrun.union(*(body.nodes for loop_id, body in planned.items() if loop_id in unrun))
    found = {loop_id: body for loop_id, body in planned.items() if loop_id not in refused and loop_id not in unrun}
    inner = set().union(*(body.inner for body in found.values()))
    outermost = [loop_id for loop_id in found if loop_id not in inner]
    hidden = unrun.union(*(found[loop_id].nodes for loop_id in outermost))
    kept = set(nodes) - hidden
    # A loader shared with the rest of the graph stays for it too (a loop that cannot run links to nothing).
    kept |= model.graph.ancestors(kept - set(refused))
    prepared = {node_id: node for node_id, node in prompt.items() if node_id in kept or node_id not in nodes}
    for loop_id in outermost:
        body = {node_id: nodes[node_id] for node_id in sorted(found[loop_id].nodes, key=id_key)}
        body, feeds = _fed_from_outside(body, found[loop_id].name)
        prepared[loop_id] = {**nodes[loop_id], "inputs": {**nodes[loop_id].get("inputs", {}), **feeds},
                             PARKED: {"body": body}}  # fmt: skip
    # What is wrong before anything runs fails ComfyUI's own validation on the nodes at fault, which the frontend
    # outlines: each is replaced by a check that says why, the loop that cannot run among them.
    faults: dict[str, list[str]] = {}
    for loop_id, error in refused.items():
        for node_id, messages in {loop_id: [str(error)], **error.faults}.items():
            said = faults.setdefault(node_id, [])
            said.extend(message for message in dict.fromkeys(messages) if message not in said)
    for node_id, messages in faults.items():
        prepared[node_id] = {"class_type": CHECK, "inputs": {"problem": "; ".join(messages)},
                             "_meta": dict(nodes[node_id].get("_meta") or {})}  # fmt: skip
    return prepared


def native_loop_nodes(prompt: Mapping[str, Any]) -> set[str]:
    """The nodes of ComfyUI's own loops around a Discomfort loop: each Start whose body (what follows it, up to
    its End) holds a Discomfort loop or the ports that loop runs, the Ends closing it, and everything upstream of
    the Start. They stay in the run around
    the Discomfort loop's body, which takes what they give it from outside (see compat.NATIVE_LOOP_CLASSES). A
    native loop that a Discomfort body holds is not among them: it goes into the body whole."""
    native = {node_id for node_id, node in prompt.items() if node.get("class_type") in compat.NATIVE_LOOP_CLASSES}
    if not native:
        return native
    model = PortGraph(prompt)
    # A Discomfort loop runs the ports tagged with its body's name, though no link shows it: a Start encloses the
    # loop when its body reaches them.
    runs: dict[str, set[str]] = {}
    for loop_id in model.loops:
        with contextlib.suppress(WorkflowError):  # a loop with no body name runs nothing
            for tagged in model.tagged(model.body_name(loop_id)):
                runs.setdefault(tagged.node_id, set()).add(loop_id)
    ends = {node_id for node_id in native if prompt[node_id]["class_type"] != compat.NATIVE_LOOP_START}
    fixed: set[str] = set()
    for start in native - ends:
        inside = model.graph.descendants({start}, runs, stop=ends)  # what comes after its End is outside it
        if inside & set(model.loops):
            closing = {end for end in ends if model.graph.parents(end) & (inside | {start})}
            fixed |= {start} | model.graph.ancestors({start}) | closing
    return fixed


def _fed_from_outside(body: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """`body` with each link to a node outside it (one that stays outside: see `native_loop_nodes`) taken from an
    entry port of its own, and the loop node's inputs that feed those ports (`FEED_INPUT` + uid -> the link)."""
    feeds: dict[str, list[Any]] = {}
    rewired = dict(body)
    for node_id, node in body.items():
        inputs = node.get("inputs") or {}
        outside = {key: value for key, value in inputs.items() if is_link(value) and value[0] not in body}
        if not outside:
            continue
        for key, (source, slot) in outside.items():
            uid = f"~{source}.{slot}"
            port_id = f"{source}.{slot}{FEED_SUFFIX}"
            rewired[port_id] = {"class_type": PORT, "inputs": {"unique_id": uid, "tags": name},
                                "_meta": {"title": f"from node {source}"}}  # fmt: skip
            feeds[FEED_INPUT + uid] = [source, slot]
            inputs = {**inputs, key: [port_id, 0]}
        rewired[node_id] = {**node, "inputs": inputs}
    return rewired, feeds


def settings_problems(loop_id: str, inputs: Mapping[str, Any], body: LoopBody) -> list[Problem]:
    """The uids a loop node's widgets name that its body does not have: `uids` must name entries or exits,
    `accumulate` and `stop_when` exits. Widgets linked to other nodes are checked when the loop runs."""
    exits, entries = body.exits(), body.entries()
    problems = []
    for widget, allowed, kind in (("uids", {*entries, *exits}, "entry or exit"), ("accumulate", exits, "exit"),
                                  ("stop_when", exits, "exit")):  # fmt: skip
        text = inputs.get(widget)
        if not isinstance(text, str):
            continue
        unknown = [uid for uid in parse_tags(text) if uid not in allowed]
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            problems.append(
                Problem(
                    f"loop {loop_id}: {widget} names {', '.join(map(repr, unknown))}, but no {kind} "
                    f"port of body {body.name!r} has that uid ({kind} uids: {known})",
                    (loop_id,),
                )
            )
    return problems


def plan_loop(loop_node: Mapping[str, Any], loop_id: str) -> LoopPlan:
    """Compile a loop node of a prepared prompt (see `prepare_prompt`) into the plan the engine runs."""
    body = _parked_body(loop_node, loop_id)
    name = (loop_node.get("inputs") or {}).get("body")
    if not isinstance(name, str) or not name.strip():
        raise WorkflowError(f"loop {loop_id}: the body name is empty; name it and tag the body's ports with it")
    ports = PortGraph(body).body_ports(name.strip())
    problems = port_problems(ports)
    if problems:
        raise PortError([problem.within(f"loop {loop_id}") for problem in problems])
    return _compile(body, ports, loop_id, name.strip())


def plan_workflow(prompt: Mapping[str, Any], name: str = "workflow") -> LoopPlan:
    """A whole workflow (or a stitched pipeline) as a loop body: its ports are those of its own body (every linked
    port that no loop inside it runs). Loops inside it keep their own tagged bodies."""
    ports = PortGraph(prompt).workflow_ports()
    problems = port_problems(ports)
    if problems:
        raise PortError([problem.within(name) for problem in problems])
    return _compile(prompt, ports, name, name)


def _parked_body(loop_node: Mapping[str, Any], loop_id: str) -> Mapping[str, Any]:
    parked = loop_node.get(PARKED)
    if parked is None:
        raise WorkflowError(f"loop {loop_id}: its prompt was not prepared (discomfort.executor.plan.prepare_prompt)")
    if parked.get("error"):
        raise WorkflowError(parked["error"])
    return parked["body"]


def _compile(source: Mapping[str, Any], ports: list[Port], loop_id: str, body_name: str) -> LoopPlan:
    body = {node_id: _copy_node(node) for node_id, node in source.items()}
    entries: dict[str, list[str]] = {}
    exits: dict[str, str] = {}
    carried = []
    fed = set()
    for port in ports:
        if port.role is None or port.role is Role.THROUGH:
            continue  # a port between an entry and its exit passes the value on, as in a plain run
        value = (source[port.node_id].get("inputs") or {}).get(VALUE)
        if port.role.is_entry:
            inputs: dict[str, Any] = {TOKEN: ""}
            if is_link(value):
                inputs[INITIAL] = list(value)
                fed.add(port.node_id)
            body[port.node_id] = _internal_node(CARRY_IN, inputs, port)
            entries.setdefault(port.uid, []).append(port.node_id)
        if port.role is Role.ENTRY_EXIT:  # what enters leaves: a sink after the carry-in reports it
            exits[port.uid] = port.node_id + EXIT_SUFFIX
            body[exits[port.uid]] = _internal_node(CARRY_OUT, {TOKEN: "", VALUE: [port.node_id, 0]}, port)
        elif port.role is Role.EXIT:
            body[port.node_id] = _internal_node(CARRY_OUT, {TOKEN: "", VALUE: list(value)}, port)
            exits[port.uid] = port.node_id
            carried.append(port.uid)
    body = prepare_prompt(body)  # loops inside this body get their own bodies parked the same way
    return LoopPlan(
        loop_id=loop_id,
        body_name=body_name,
        prompt=body,
        entries={uid: tuple(ids) for uid, ids in entries.items()},
        exits=exits,
        carried=tuple(uid for uid in carried if uid in entries),
        fed=frozenset(fed),
        fingerprint=fingerprint(body),
    )


def fingerprint(prompt: Mapping[str, Any]) -> str:
    """A stable hash of a body's structure: equal for the same graph and widget values, different when either
    changes. Carry tokens are left out: they name a run, not a structure."""
    text = json.dumps(_without_tokens(prompt), sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _without_tokens(value: Any) -> Any:
    if isinstance(value, Mapping):
        if value.get("class_type") in CARRY_CLASSES:
            value = {**value, "inputs": {**(value.get("inputs") or {}), TOKEN: ""}}
        return {key: _without_tokens(item) for key, item in value.items()}
    return value


def _internal_node(class_type: str, inputs: dict[str, Any], port: Port) -> dict[str, Any]:
    role = port.role.value if port.role is not None else port.mode.value
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": f"{port.uid} ({role} port)"}}


def _copy_node(node: Mapping[str, Any]) -> dict[str, Any]:
    copy = dict(node)
    copy["inputs"] = dict(node.get("inputs") or {})
    return copy
