"""What the converter needs to know of a node class: its inputs in order (which are widgets), its outputs.

Built from a class's INPUT_TYPES() dict (the same data /object_info serves), so it is testable without ComfyUI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

# ComfyUI's V3 combo whose choice brings inputs of its own (since 0.3x): the frontend draws them after the combo,
# and the API format names them `<combo>.<input>`.
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
# V3's input that grows a socket at a time as they are linked, each named `<autogrow>.<name>`.
AUTOGROW = "COMFY_AUTOGROW_V3"
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", DYNAMIC_COMBO})
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload", "upload")


@dataclass(frozen=True)
class InputDef:
    name: str
    type: str  # "COMBO" for a list of choices
    options: Mapping[str, Any]
    required: bool
    choices: tuple[Any, ...] = ()

    @property
    def is_widget(self) -> bool:
        """The frontend draws a widget for it (unless forced to a socket), so it has a slot in widgets_values: the
        widget types, and since 0.3x any type without a socket (COLOR, CURVE...) or that names the widget to draw
        (a multi-type input such as "FLOAT,INT"). Hidden widgets keep their slot."""
        widget = self.type in WIDGET_TYPES or bool(self.options.get("socketless") or self.options.get("widgetType"))
        return widget and not self.options.get("forceInput", False)

    @property
    def default(self) -> Any:
        if "default" in self.options:
            return self.options["default"]
        if self.choices:
            return self.choices[0]
        return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(self.type)

    def has_control_widget(self) -> bool:
        """INT widgets the frontend follows with a control_after_generate combo (seeds, mostly)."""
        return self.type == "INT" and bool(
            self.options.get("control_after_generate") or self.name in ("seed", "noise_seed")
        )

    def has_upload_widget(self) -> bool:
        return self.type == "COMBO" and any(self.options.get(option) for option in UPLOAD_OPTIONS)

    def chosen_inputs(self, choice: Any) -> tuple[InputDef, ...]:
        """The inputs a dynamic combo brings when `choice` is chosen, named as the API format names them."""
        if self.type != DYNAMIC_COMBO:
            return ()
        for option in self.options.get("options") or ():
            if isinstance(option, Mapping) and option.get("key") == choice:
                nested = node_def("", option.get("inputs") or {}).inputs
                return tuple(replace(spec, name=f"{self.name}.{spec.name}") for spec in nested)
        return ()


@dataclass(frozen=True)
class NodeDef:
    class_type: str
    inputs: tuple[InputDef, ...]
    outputs: tuple[str, ...] = ()
    output_node: bool = False
    output_names: tuple[str, ...] = ()  # RETURN_NAMES, when known: what the frontend names each output slot

    @property
    def widgets(self) -> tuple[InputDef, ...]:
        return tuple(spec for spec in self.inputs if spec.is_widget)

    def input(self, name: str) -> InputDef | None:
        return next((spec for spec in self.inputs if spec.name == name), None)


def node_def(class_type: str, input_types: Mapping[str, Any], outputs: Sequence[str] = (),
             output_node: bool = False, output_names: Sequence[str] = ()) -> NodeDef:  # fmt: skip
    """A NodeDef from a node class's INPUT_TYPES() result (required inputs first, then optional, as the frontend)."""
    inputs = []
    for category, required in (("required", True), ("optional", False)):
        for name, spec in (input_types.get(category) or {}).items():
            if isinstance(spec, (list, tuple)):
                kind, options = spec[0], spec[1] if len(spec) > 1 else {}
            else:
                kind, options = spec, {}
            options = options if isinstance(options, Mapping) else {}
            if isinstance(kind, (list, tuple)):
                inputs.append(InputDef(name, "COMBO", options, required, tuple(kind)))
            elif kind == DYNAMIC_COMBO:
                keys = tuple(o.get("key") for o in options.get("options") or () if isinstance(o, Mapping))
                inputs.append(InputDef(name, DYNAMIC_COMBO, options, required, keys))
            elif kind == "COMBO":
                inputs.append(InputDef(name, "COMBO", options, required, tuple(options.get("options") or ())))
            else:
                inputs.append(InputDef(name, str(kind), options, required))
    return NodeDef(class_type, tuple(inputs), tuple(str(kind) for kind in outputs), output_node,
                   tuple(str(name) for name in output_names))  # fmt: skip
