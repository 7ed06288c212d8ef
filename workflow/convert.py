"""UI workflow (what ComfyUI's frontend saves) to API prompt (what ComfyUI runs), in Python.

The same steps as the frontend's graphToPrompt, from node definitions instead of a live canvas:
- widget values are positional over each node's widgets, in input order (required, then optional): an input is a
  widget when its type is one the frontend draws a widget for (nodedefs.WIDGET_TYPES); the values of
  frontend-only widgets are skipped (control_after_generate after a widget, the buttons a LOAD_3D widget adds,
  the upload widgets the frontend appends to the required inputs); the widgets a frontend extension adds
  (CustomCombo's) come last;
- V3 dynamic inputs (ComfyUI 0.3x and newer) are followed by the inputs they bring: a dynamic combo's choice's,
  `<combo>.<input>`; a dynamic group's rows, `<group>.<row>.<field>`; a linked dynamic slot's, `<slot>.<input>`;
  the sockets an autogrow input added (`<autogrow>.<name>`, the autogrow perhaps itself brought) take their links;
- a widget turned into a linked input takes its link, not its saved value; missing widget values take defaults;
- Reroutes are followed, PrimitiveNodes become constants, Notes vanish; muted nodes are dropped and bypassed
  nodes pass their input of the matching type through (which needs no definition of their class);
- subgraphs (`definitions.subgraphs`, nested) are flattened into ids `outer:inner`, their promoted widgets
  (`properties.proxyWidgets`) applied to the inner nodes;
- links may be v0.4 arrays or v1 objects; a link leaves the output its slot names: a node whose outputs are not all
  shown (Discomfort's loop nodes show the value sockets in use only) saves each output's name, and the API prompt
  needs the definition's position of that name.
Node types that no definition knows are reported together, by id and type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import WorkflowError
from .graph import MODE_BYPASSED, MODE_MUTED, detect_format
from .nodedefs import AUTOGROW, DYNAMIC_GROUP, LEADING_VALUES, UPLOAD_OPTIONS, WIDGET_TYPES, InputDef, NodeDef

VIRTUAL = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})  # frontend-only node types
NOTES = frozenset({"Note", "MarkdownNote"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})
UPLOAD_VALUES = frozenset({"image", "video", "audio", "file", "upload"})
# The frontend appends what it adds for uploads to a node's required inputs (uploadImage.ts, uploadAudio.ts):
# an upload button, and for audio a player before it (older frontends saved the player's value, newer do not).
UPLOAD_SLOTS = {"audio_upload": 2}
# Node classes the frontend gives an audio player, also appended to the required inputs (uploadAudio.ts).
AUDIO_PLAYERS = frozenset({"LoadAudio", "SaveAudio", "PreviewAudio", "SaveAudioMP3", "SaveAudioOpus",
                           "SaveAudioAdvanced"})  # fmt: skip
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20


@dataclass(frozen=True)
class _Constant:
    value: Any


_MISSING = object()


def ui_to_api(workflow: Mapping[str, Any], defs: Mapping[str, NodeDef]) -> dict[str, Any]:
    """Convert a UI workflow to an API prompt using node definitions `defs` (class type -> NodeDef)."""
    if detect_format(workflow) == "api":
        return {node_id: dict(node) for node_id, node in workflow.items()}
    return _Converter(workflow, defs).convert()


class _Converter:
    def __init__(self, workflow: Mapping[str, Any], defs: Mapping[str, NodeDef]):
        self.defs = defs
        self.subgraphs = {sg["id"]: sg for sg in (workflow.get("definitions") or {}).get("subgraphs") or []}
        self.nodes: dict[str, dict] = {}  # full id -> UI node (instances and pseudo nodes included)
        self.incoming: dict[tuple[str, int], tuple[str, int]] = {}  # (target, slot) -> (origin, slot)
        self.overrides: dict[str, dict[str, Any]] = {}  # full id -> promoted widget values
        self._flatten(workflow.get("nodes") or [], workflow.get("links") or [], "", depth=0, mode=0)

    # --- flattening ---------------------------------------------------------------------------------------------

    def _flatten(self, nodes: list, links: list, prefix: str, depth: int, mode: int) -> None:
        """Record `nodes` under `prefix`; `mode` is that of the enclosing instance. None of the nodes a muted or
        bypassed subgraph node holds runs: the frontend's graphToPrompt skips them under a top-level one, and here
        a nested one is taken to do the same (a bypassed one passes its inputs through as a whole, see resolve)."""
        if depth > 32:
            raise WorkflowError(f"subgraphs nested more than 32 deep at {prefix!r} (a subgraph containing itself?)")
        for node in nodes:
            if not isinstance(node, Mapping) or "id" not in node or "type" not in node:
                raise WorkflowError(f"malformed node {str(node)[:80]}: a UI node needs an 'id' and a 'type'")
            full = f"{prefix}{node['id']}"
            if mode in (MODE_MUTED, MODE_BYPASSED) and int(node.get("mode") or 0) != MODE_MUTED:
                node = {**node, "mode": mode}
            self.nodes[full] = node
            if node["type"] in self.subgraphs:
                self._promote(full, node, self.subgraphs[node["type"]])
                definition = self.subgraphs[node["type"]]
                self._flatten(definition.get("nodes") or [], definition.get("links") or [], f"{full}:", depth + 1,
                              int(node.get("mode") or 0))  # fmt: skip
        for link in links:
            origin, origin_slot, target, target_slot = _link_ends(link)
            # Inside a subgraph, -10 and -20 are its boundaries; prefixed, they name the instance's own sides.
            self.incoming[(f"{prefix}{target}", target_slot)] = (f"{prefix}{origin}", origin_slot)

    def _promote(self, full: str, instance: Mapping[str, Any], definition: Mapping[str, Any]) -> None:
        promoted = (instance.get("properties") or {}).get("proxyWidgets") or []
        values = instance.get("widgets_values") or []
        if isinstance(values, list):
            for (inner_id, widget), value in zip(promoted, values, strict=False):
                if str(inner_id) != "-1":
                    self.overrides.setdefault(f"{full}:{inner_id}", {})[widget] = value

    # --- resolving what feeds an input -----------------------------------------------------------------------------

    def resolve(self, origin: str, slot: int, seen: frozenset = frozenset()) -> Any:
        """A link [id, slot] to a real node, a _Constant, or _MISSING."""
        if (origin, slot) in seen:
            raise WorkflowError(f"the links around node {origin} form a loop through Reroutes or bypassed nodes")
        seen = seen | {(origin, slot)}
        prefix, _, local = origin.rpartition(":")
        if local == str(SUBGRAPH_INPUT):  # a subgraph's input: whatever feeds the instance's matching input
            return self._instance_input(prefix, slot, seen)
        node = self.nodes.get(origin)
        if node is None:
            return _MISSING
        kind, mode = node["type"], int(node.get("mode") or 0)
        if mode == MODE_MUTED:
            return _MISSING
        if mode == MODE_BYPASSED:  # a bypassed subgraph node too passes its own input through, as a whole
            wanted = _slot_type(node.get("outputs"), slot)
            for index, spec in enumerate(node.get("inputs") or []):
                if (origin, index) in self.incoming and _types_match(spec.get("type"), wanted):
                    return self._follow((origin, index), seen)
            return _MISSING
        if kind in self.subgraphs:  # a subgraph's output: what feeds the definition's matching output
            return self._follow((f"{origin}:{SUBGRAPH_OUTPUT}", self._definition_slot(origin, "outputs", slot)), seen)
        if kind == "Reroute":
            return self._follow((origin, 0), seen)
        if kind == "PrimitiveNode":
            values = node.get("widgets_values") or []
            return _Constant(values[0]) if values else _MISSING
        return [origin, self._output_position(node, slot)]

    def _output_position(self, node: Mapping[str, Any], slot: int) -> int:
        """The definition's index of the output a UI slot names. Frontends name every slot after the definition's
        output at its position, so this is `slot` unless the node shows only some of its outputs; names repeat
        across outputs (two "IMAGE"s), so only a name the definition gives once is followed."""
        names = getattr(self.defs.get(node["type"]), "output_names", ())
        name = _slot_name(node.get("outputs"), slot)
        if name is None or names.count(name) != 1 or (slot < len(names) and names[slot] == name):
            return slot
        return names.index(name)

    def _follow(self, target: tuple[str, int], seen: frozenset) -> Any:
        source = self.incoming.get(target)
        return _MISSING if source is None else self.resolve(*source, seen)

    def _definition_slot(self, instance: str, side: str, instance_slot: int) -> int:
        """The definition's slot for an instance's slot: they are matched by name."""
        node = self.nodes.get(instance) or {}
        slots = [spec.get("name") for spec in node.get(side) or []]
        wanted = slots[instance_slot] if 0 <= instance_slot < len(slots) else None
        names = [spec.get("name") for spec in (self.subgraphs.get(node.get("type")) or {}).get(side) or []]
        return names.index(wanted) if wanted in names else instance_slot

    def _instance_input(self, instance: str, definition_slot: int, seen: frozenset) -> Any:
        """What feeds a subgraph's input `definition_slot`: the instance's linked input of the same name, else the
        value of the widget the instance shows for it (promoted as ["-1", name], or an input drawn as a widget)."""
        node = self.nodes.get(instance) or {}
        names = [spec.get("name") for spec in (self.subgraphs.get(node.get("type")) or {}).get("inputs") or []]
        if not 0 <= definition_slot < len(names):
            return _MISSING
        name = names[definition_slot]
        inputs = node.get("inputs") or []
        slot = next((index for index, spec in enumerate(inputs) if spec.get("name") == name), None)
        if slot is not None and (instance, slot) in self.incoming:
            return self._follow((instance, slot), seen)
        values = node.get("widgets_values")
        if not isinstance(values, list):
            return _MISSING
        promoted = (node.get("properties") or {}).get("proxyWidgets") or []
        for (inner_id, widget), value in zip(promoted, values, strict=False):
            if str(inner_id) == "-1" and widget == name:
                return _Constant(value)
        # The instance's values are those of the definition's widget inputs, in the definition's order: inputs the
        # instance draws as widgets, and (newer frontends list only some) widget-typed inputs it does not list.
        drawn = {spec.get("name"): bool(spec.get("widget")) for spec in inputs}
        kinds = [spec.get("type") for spec in (self.subgraphs.get(node.get("type")) or {}).get("inputs") or []]
        widgets = [n for n, kind in zip(names, kinds, strict=True) if drawn.get(n, kind in WIDGET_TYPES)]
        if name in widgets and widgets.index(name) < len(values):
            return _Constant(values[widgets.index(name)])
        return self._inner_widget_value(instance, definition_slot)

    def _inner_widget_value(self, instance: str, definition_slot: int) -> Any:
        """The saved value of an inner widget this subgraph input feeds. Newer frontends promote such a widget in
        place (proxyWidgets naming the inner node) and keep its value there; every target of the input shares it."""
        boundary = (f"{instance}:{SUBGRAPH_INPUT}", definition_slot)
        for (target, slot), source in self.incoming.items():
            node = self.nodes.get(target) or {}
            sockets = node.get("inputs") or []
            if source != boundary or node.get("type") not in self.defs or not 0 <= slot < len(sockets):
                continue
            name = sockets[slot].get("name")
            if sockets[slot].get("widget"):
                values = self._widget_values(target, node, self.defs[node["type"]])
                if name in values:
                    return _Constant(values[name])
        return _MISSING

    # --- building the prompt ----------------------------------------------------------------------------------------

    def convert(self) -> dict[str, Any]:
        unknown = sorted(
            (full, node["type"]) for full, node in self.nodes.items()
            if not full.rsplit(":", 1)[-1].startswith("-") and node["type"] not in self.subgraphs
            and node["type"] not in VIRTUAL and node["type"] not in self.defs
            and int(node.get("mode") or 0) not in (MODE_MUTED, MODE_BYPASSED)
        )  # fmt: skip
        if unknown:
            listed = ", ".join(f"node {full} ({kind})" for full, kind in unknown)
            raise WorkflowError(f"unknown node types (not installed in this ComfyUI?): {listed}")
        prompt: dict[str, Any] = {}
        for full, node in self.nodes.items():
            kind = node["type"]
            if kind in self.subgraphs or kind in VIRTUAL or int(node.get("mode") or 0) in (MODE_MUTED, MODE_BYPASSED):
                continue
            entry: dict[str, Any] = {"class_type": kind, "inputs": self._inputs(full, node, self.defs[kind])}
            entry["_meta"] = {"title": node.get("title") or kind}
            prompt[full] = entry
        return prompt

    def _widget_values(self, full: str, node: Mapping[str, Any], definition: NodeDef) -> dict[str, Any]:
        """A node's saved widget values by name, with what its subgraph instances promote over them."""
        values = node.get("widgets_values")
        if isinstance(values, Mapping):
            by_name = dict(values)
        else:
            by_name = _positional(definition, list(values or []), self._linked(full, node))
        by_name.update(self.overrides.get(full, {}))
        return by_name

    def _linked(self, full: str, node: Mapping[str, Any]) -> set[str]:
        return {socket.get("name") for slot, socket in enumerate(node.get("inputs") or [])
                if (full, slot) in self.incoming}  # fmt: skip

    def _inputs(self, full: str, node: Mapping[str, Any], definition: NodeDef) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        by_name = self._widget_values(full, node, definition)
        specs = {spec.name: spec for spec in _expanded(definition.inputs, by_name, self._linked(full, node))}
        for spec in specs.values():
            if spec.in_prompt:
                value = by_name.get(spec.name, _MISSING)
                inputs[spec.name] = spec.default if value is _MISSING else _wrap(value)
        for name in _frontend_widgets(definition.class_type, by_name):
            inputs[name] = _wrap(by_name[name])
        for slot, socket in enumerate(node.get("inputs") or []):
            name = socket.get("name")
            if not (name in specs or _grown(specs, name)) or (full, slot) not in self.incoming:
                continue
            source = self._follow((full, slot), frozenset())
            if isinstance(source, _Constant):
                inputs[name] = _wrap(source.value)
            elif source is not _MISSING:
                inputs[name] = source
            elif name not in specs or not specs[name].is_widget:
                inputs.pop(name, None)  # fed by a muted or missing node: the frontend drops the input
        return inputs


def _positional(definition: NodeDef, values: list[Any], linked: set[str]) -> dict[str, Any]:
    """Widget values by name, as the frontend lays them out: its widgets in input order, required then optional,
    each dynamic input's own (a combo's choice, a group's rows, a linked slot's inputs) right after it; the values
    of frontend-only widgets skipped: control_after_generate after a widget, the three buttons before a LOAD_3D
    widget, the upload widgets appended to the required inputs; then the widgets a frontend extension adds."""
    by_name: dict[str, Any] = {}

    def take(specs: Sequence[InputDef], position: int) -> int:
        for spec in specs:
            if spec.is_widget and position < len(values):
                leading = LEADING_VALUES.get(spec.type, frozenset())
                while position < len(values) - 1 and _is(values[position], leading):
                    position += 1
                by_name[spec.name] = values[position]
                position += 1
                if spec.has_control_widget() and position < len(values) and _is(values[position], CONTROL_VALUES):
                    position += spec.control_slots
            position = take(spec.children(by_name.get(spec.name, spec.default), linked), position)
        return position

    required = [spec for spec in definition.inputs if spec.required]
    position = take(required, 0)
    for _ in range(_upload_slots(definition.class_type, required)):
        if position < len(values) and _is_upload_value(values[position]):
            position += 1
    position = take([spec for spec in definition.inputs if not spec.required], position)
    for name, value in zip(_frontend_widgets(definition.class_type, values[position:]), values[position:],
                           strict=False):  # fmt: skip
        by_name[name] = value
    return by_name


def _upload_slots(class_type: str, required: Sequence[InputDef]) -> int:
    """How many values the frontend's upload widgets may have added after the required inputs' own."""
    kinds = [kind for spec in required if spec.type == "COMBO" for kind in UPLOAD_OPTIONS if spec.options.get(kind)]
    slots = max([UPLOAD_SLOTS.get(kind, 1) for kind in kinds], default=0)
    return max(slots, 1) if class_type in AUDIO_PLAYERS else slots


def _is_upload_value(value: Any) -> bool:
    """An upload button's or an audio player's saved value: its name, a serialized button widget, or nothing."""
    return (
        value is None
        or value == ""
        or _is(value, UPLOAD_VALUES)
        or (isinstance(value, Mapping) and value.get("type") == "button")
    )


def _is(value: Any, among: frozenset) -> bool:
    # widgets_values hold anything JSON holds, dicts and lists among them, which a set cannot be asked about.
    return isinstance(value, str) and value in among


def _frontend_widgets(class_type: str, values: Sequence[Any] | Mapping[str, Any]) -> list[str]:
    """Names of the widgets a core frontend extension adds after a node's own, which the API format carries.
    CustomCombo's widgets are the frontend's (customCombo.ts; the node takes any input): a hidden `index`, the
    position of the choice among the options, then a string widget per option, `option0`, `option1`, ..."""
    if class_type != "CustomCombo":
        return []
    if isinstance(values, Mapping):
        return [name for name in values if name == "index" or name.startswith("option")]
    return ["index", *(f"option{i}" for i in range(len(values) - 1))]


def _grown(specs: Mapping[str, InputDef], name: str) -> bool:
    """Whether `name` is a socket an autogrow input added, `<autogrow>.<name>`, the autogrow perhaps itself a
    dynamic input's (`model.images.image_1`: an autogrow `images` that the `model` combo's choice brings)."""
    group, dot, _ = name.rpartition(".")
    return bool(dot) and group in specs and specs[group].type == AUTOGROW


def _expanded(specs: Sequence[InputDef], by_name: Mapping[str, Any], linked: set[str]) -> list[InputDef]:
    """`specs` with, after each dynamic input, the inputs it brings for its value (or default), recursively."""
    expanded = []
    for spec in specs:
        expanded.append(spec)
        value = by_name.get(spec.name, spec.default)
        expanded += _expanded(spec.children(_row_count(spec, value, by_name), linked), by_name, linked)
    return expanded


def _row_count(spec: InputDef, value: Any, by_name: Mapping[str, Any]) -> Any:
    """A dynamic group's rows: its saved count, else (widgets saved by name) as many as its fields' names say."""
    if spec.type != DYNAMIC_GROUP or (isinstance(value, int) and spec.name in by_name):
        return value
    rows = [name[len(spec.name) + 1 :].partition(".")[0] for name in by_name if name.startswith(f"{spec.name}.")]
    return max((int(row) + 1 for row in rows if row.isdigit()), default=value)


def _wrap(value: Any) -> Any:
    # The API format wraps list-valued widgets so they are not mistaken for links.
    return {"__value__": value} if isinstance(value, list) else value


def _link_ends(link: Any) -> tuple[Any, int, Any, int]:
    if isinstance(link, (list, tuple)) and len(link) >= 5:
        return link[1], int(link[2]), link[3], int(link[4])
    if isinstance(link, Mapping):
        try:
            return link["origin_id"], int(link["origin_slot"]), link["target_id"], int(link["target_slot"])
        except (KeyError, TypeError, ValueError):
            pass
    raise WorkflowError(f"malformed link {str(link)[:80]}")


def _slot_name(outputs: Any, slot: int) -> str | None:
    try:
        name = outputs[slot].get("name")
    except (IndexError, TypeError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _slot_type(outputs: Any, slot: int) -> str:
    try:
        return str(outputs[slot].get("type") or "*")
    except (IndexError, TypeError, AttributeError):
        return "*"


def _types_match(a: Any, b: Any) -> bool:
    a, b = str(a or "*"), str(b or "*")
    return a == b or "*" in (a, b) or bool(set(a.split(",")) & set(b.split(",")))
