"""What the converter needs to know of a node class: its inputs in order (which are widgets), its outputs.

Built from a class's INPUT_TYPES() dict (the same data /object_info serves), so it is testable without ComfyUI.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

# ComfyUI's V3 combo whose choice brings inputs of its own (since 0.3x): the frontend draws them after the combo,
# and the API format names them `<combo>.<input>`.
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
# V3's input that grows a socket at a time as they are linked, each named `<autogrow>.<name>`.
AUTOGROW = "COMFY_AUTOGROW_V3"
# V3's socket that brings inputs of its own, `<slot>.<input>`, once it is linked (0.33+; no 0.33 node uses it).
DYNAMIC_SLOT = "COMFY_DYNAMICSLOT_V3"
# V3's rows of widgets, `<group>.<row>.<field>` (newest ComfyUI): the frontend saves the row count, then each row.
DYNAMIC_GROUP = "COMFY_DYNAMICGROUP_V3"
# The input types the frontend draws as widgets, so that each has a slot in widgets_values: its widget registry
# (ComfyUI_frontend src/scripts/widgets.ts, ComfyWidgets, and its dynamic widgets) and the custom widgets of its
# core extensions (load3d: LOAD_3D, PREVIEW_3D and their animation kinds; webcamCapture: WEBCAM; uploadAudio:
# AUDIO_RECORD). Whether an input is a widget is decided by `widgetType ?? type` in that registry, unless
# `forceInput` (litegraphService.addInputSocket).
WIDGET_TYPES = frozenset({
    "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "MARKDOWN", "IMAGEUPLOAD", "COLOR", "IMAGECOMPARE", "BOUNDING_BOX",
    "CHART", "GALLERIA", "PAINTER", "COMPOSITOR", "TEXTAREA", "CURVE", "RANGE", "VIDEO_EDIT", "RESOLUTION_PREVIEW",
    "BOUNDING_BOXES", "COLORS", DYNAMIC_COMBO, DYNAMIC_GROUP,
    "LOAD_3D", "LOAD_3D_ANIMATION", "PREVIEW_3D", "PREVIEW_3D_ANIMATION", "WEBCAM", "AUDIO_RECORD",
})  # fmt: skip
# ComfyUI's upload kinds (comfy_api/latest/_io.py UploadType: image, audio, video, model = "file_upload").
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload", "file_upload", "upload")
# Values that precede a widget's own value: the LOAD_3D widget first adds three buttons (load3d.ts), whose values
# are saved.
LEADING_VALUES = {"LOAD_3D": frozenset({"upload3dmodel", "uploadExtraResources", "clear"})}
LEADING_VALUES["LOAD_3D_ANIMATION"] = LEADING_VALUES["LOAD_3D"]


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
        if self.type == DYNAMIC_GROUP:
            return int(self.options.get("min", 0))  # the frontend starts a group with its fewest rows
        if self.choices:
            return self.choices[0]
        return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(self.type)

    def has_control_widget(self) -> bool:
        """Whether the frontend follows this widget with a control_after_generate combo: where the input says so
        (`control_after_generate`), else for INTs named seed or noise_seed (useIntWidget.ts; V3 leaves out a False
        option, so a V3 seed gets one too); combos only when the input says so (useComboWidget.ts)."""
        if self.type == "INT":
            return bool(self.options.get("control_after_generate", self.name in ("seed", "noise_seed")))
        return self.type == "COMBO" and bool(self.options.get("control_after_generate"))

    @property
    def control_slots(self) -> int:
        """widgets_values slots its control takes: the control combo, and for a combo also the filter-list string
        widget the frontend adds with it (addValueControlWidgets)."""
        return 2 if self.type == "COMBO" else 1

    def has_upload_widget(self) -> bool:
        return self.type == "COMBO" and any(self.options.get(option) for option in UPLOAD_OPTIONS)

    @property
    def in_prompt(self) -> bool:
        """Whether the API format holds its value: a dynamic group's row count is the frontend's alone (its widget
        is `serialize: false` in the prompt); the rows' fields carry the data."""
        return self.is_widget and self.type != DYNAMIC_GROUP

    def children(self, value: Any, linked: Container[str] = ()) -> tuple[InputDef, ...]:
        """The inputs this one brings, named as the API format names them, in the frontend's order:
        - a dynamic combo: those of the option `value` chose, `<combo>.<input>`;
        - a dynamic group: `value` rows of its template's fields, `<group>.<row>.<field>`;
        - a dynamic slot: its inputs, `<slot>.<input>`, once the slot is linked (`linked` holds linked sockets).
        """
        if self.type == DYNAMIC_COMBO:
            for option in self.options.get("options") or ():
                if isinstance(option, Mapping) and option.get("key") == value:
                    return self._prefixed(option.get("inputs") or {}, self.name)
        elif self.type == DYNAMIC_GROUP and isinstance(value, int) and not isinstance(value, bool):
            rows = max(0, min(value, int(self.options.get("max", 20))))
            template = self.options.get("template") or {}
            return tuple(field for row in range(rows) for field in self._prefixed(template, f"{self.name}.{row}"))
        elif self.type == DYNAMIC_SLOT and self.name in linked:
            return self._prefixed(self.options.get("inputs") or {}, self.name)
        return ()

    @staticmethod
    def _prefixed(input_types: Mapping[str, Any], prefix: str) -> tuple[InputDef, ...]:
        return tuple(replace(spec, name=f"{prefix}.{spec.name}") for spec in node_def("", input_types).inputs)


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
