"""The DiscomfortPort node: one wildcard socket in, the same value out, named by a unique_id."""

from __future__ import annotations

from typing import Any

from ..errors import WorkflowError
from .anytype import ANY

_NOTHING = object()  # what an unlinked optional input gets: ComfyUI passes nothing for it


class DiscomfortPort:
    """Marks where a value enters, leaves or passes through a piece of graph.

    The node itself only passes its value on. What makes it a port is the graph around it (see
    `discomfort.ports.discovery`): a loop or a workflow runner finds it by its unique_id and feeds or reads it.
    """

    DESCRIPTION = (
        "Marks where a value enters (nothing linked in), leaves (nothing linked out) or passes through a piece of "
        "graph. Loops and workflow runs find ports by unique_id; in a plain run the value just passes through."
    )
    CATEGORY = "Discomfort"
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("value",)
    FUNCTION = "pass_value"
    SEARCH_ALIASES = ["port", "loop input", "loop output"]

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "unique_id": ("STRING", {"default": "", "tooltip": "The name this port is known by, e.g. 'image'."}),
                "tags": ("STRING", {"default": "", "tooltip": "Comma-separated labels, e.g. the name of a loop."}),
            },
            "optional": {
                "value": (ANY, {"tooltip": "Any value; it is passed on unchanged."}),
            },
            "hidden": {"node_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, unique_id: str) -> bool | str:
        if not isinstance(unique_id, str) or not unique_id.strip():
            return "DiscomfortPort needs a non-empty unique_id"
        return True

    def pass_value(self, unique_id: str, tags: str, value: Any = _NOTHING, node_id: str | None = None) -> tuple[Any]:
        if value is _NOTHING:
            # An INPUT port runs as itself only when no loop or workflow run stands in for it.
            raise WorkflowError(
                f"DiscomfortPort node {node_id} (uid {unique_id!r}) is an INPUT port with nothing to give: no loop "
                "runs it and nothing feeds it. Tag it with a loop's body name, run its workflow as a loop body, or "
                "link a value into it"
            )
        return (value,)
